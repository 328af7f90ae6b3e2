package sysmem

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const meminfo = "MemTotal:       24683800 kB\nMemFree:        20000000 kB\nMemAvailable:   10000000 kB\nBuffers: 1 kB\n"

func TestCgroupV2Nested(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"proc/meminfo":     meminfo,
		"proc/self/cgroup": "0::/svc/inspectd\n",
		// The service's own limit is loose; its parent's is tight.
		"cg/svc/inspectd/memory.max":     "max\n",
		"cg/svc/inspectd/memory.current": "100\n",
		"cg/svc/memory.max":              "1000000\n",
		"cg/svc/memory.current":          "600000\n",
		"cg/svc/memory.stat":             "anon 1\ninactive_file 100000\nactive_file 5\n",
	})
	a, err := Sources{Proc: filepath.Join(dir, "proc"), Cgroup: filepath.Join(dir, "cg")}.Available()
	if err != nil {
		t.Fatal(err)
	}
	if a.Bytes != 1000000-(600000-100000) || !strings.HasSuffix(a.Source, "svc/memory.max") {
		t.Fatalf("%+v", a)
	}
}

func TestCgroupV1AndMeminfo(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"proc/meminfo":                        meminfo,
		"proc/self/cgroup":                    "4:memory:/job\n3:cpu,cpuacct:/job\n0::/\n",
		"cg/memory/job/memory.limit_in_bytes": "2147483648\n",
		"cg/memory/job/memory.usage_in_bytes": "1073741824\n",
		"cg/memory/job/memory.stat":           "total_inactive_file 73741824\n",
		"cg/memory/memory.limit_in_bytes":     "9223372036854771712\n",
		"cg/memory/memory.usage_in_bytes":     "5\n",
	})
	src := Sources{Proc: filepath.Join(dir, "proc"), Cgroup: filepath.Join(dir, "cg")}
	a, err := src.Available()
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2147483648 - (1073741824 - 73741824)); a.Bytes != want {
		t.Fatalf("%+v, want %d", a, want)
	}
	// A loose cgroup: meminfo wins.
	write(t, dir, map[string]string{"cg/memory/job/memory.limit_in_bytes": "99999999999999\n"})
	a, _ = src.Available()
	if a.Bytes != 10000000*1024 || !strings.Contains(a.Source, "MemAvailable") {
		t.Fatalf("%+v", a)
	}
}

func TestMeminfoFallbackAndErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"proc/meminfo": "MemFree: 10 kB\nCached: 5 kB\nBuffers: 1 kB\n"})
	a, err := Sources{Proc: filepath.Join(dir, "proc"), Cgroup: filepath.Join(dir, "cg")}.Available()
	if err != nil || a.Bytes != 16*1024 {
		t.Fatalf("%+v %v", a, err)
	}
	write(t, dir, map[string]string{"proc/meminfo": "Nothing: 1\n"})
	if _, err := (Sources{Proc: filepath.Join(dir, "proc")}).Available(); err == nil {
		t.Error("meminfo without figures accepted")
	}
	if _, err := (Sources{Proc: filepath.Join(dir, "none")}).Available(); err == nil {
		t.Error("missing meminfo accepted")
	}
}

func TestRealSystem(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	a, err := Available()
	if err != nil {
		t.Fatal(err)
	}
	if a.Bytes <= 0 {
		t.Fatalf("%+v", a)
	}
	t.Logf("available: %d MiB from %s", a.Bytes>>20, a.Source)
}
