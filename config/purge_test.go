package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The README says `apt purge inspectd` deletes the configuration, but the
// Debian package's postrm only tried rmdir /etc/inspectd after dpkg removed
// the conffile: a box that had taken one remote configuration push kept
// inspectd.yaml.prev (PreviousPath, with the broker password in it) and
// the folder for good. Purge removes the files inspectd writes there itself
// (the previous file, a temporary file a crash left) and still keeps what
// an operator put in the folder (a CA file).
func TestPurgeRemovesThePreviousConfiguration(t *testing.T) {
	postrm, err := filepath.Abs("../systemd/debian/postrm")
	if err != nil {
		t.Fatal(err)
	}
	// A PATH with rm and rmdir only: deb-systemd-helper, where the test
	// machine has it, must not act on the host's units.
	bin := t.TempDir()
	for _, tool := range []string{"rm", "rmdir"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	purge := func(t *testing.T, root string) {
		t.Helper()
		if root == "" {
			t.Fatal("DPKG_ROOT must not be empty: postrm would purge the host")
		}
		cmd := exec.Command("/bin/sh", postrm, "purge")
		cmd.Env = []string{"PATH=" + bin, "DPKG_ROOT=" + root}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postrm purge: %v\n%s", err, out)
		}
	}
	write := func(t *testing.T, path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("mqtt: {password: secret}\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("pushed", func(t *testing.T) {
		root := t.TempDir()
		etc := filepath.Join(root, "etc", "inspectd")
		// dpkg has removed the conffile inspectd.yaml before postrm purge.
		write(t, PreviousPath(filepath.Join(etc, "inspectd.yaml")))
		write(t, filepath.Join(etc, ".inspectd.yaml.tmp-123456"))
		write(t, filepath.Join(root, "var", "lib", "inspectd", "model.safetensors"))
		purge(t, root)
		for _, p := range []string{etc, filepath.Join(root, "var", "lib", "inspectd")} {
			if _, err := os.Lstat(p); err == nil {
				left, _ := os.ReadDir(p)
				t.Errorf("after purge %s is still there (holding %d entries)", p, len(left))
			}
		}
	})
	t.Run("operator's file kept", func(t *testing.T) {
		root := t.TempDir()
		etc := filepath.Join(root, "etc", "inspectd")
		write(t, PreviousPath(filepath.Join(etc, "inspectd.yaml")))
		write(t, filepath.Join(etc, "ca.pem"))
		purge(t, root)
		if _, err := os.Stat(filepath.Join(etc, "ca.pem")); err != nil {
			t.Errorf("purge removed the operator's ca.pem: %v", err)
		}
		if _, err := os.Lstat(PreviousPath(filepath.Join(etc, "inspectd.yaml"))); err == nil {
			t.Error("purge kept inspectd.yaml.prev")
		}
	})
}
