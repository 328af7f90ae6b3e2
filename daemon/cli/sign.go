package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/inspectd/inspectd/daemon/remote"
)

// maxSignInput bounds what sign reads from stdin: a command body is at most
// remote.max_payload (16 MiB at the most).
const maxSignInput = 16 << 20

// cmdKeygen makes an Ed25519 key pair for signing remote commands.
func cmdKeygen() *Command {
	return &Command{
		Name:    "keygen",
		Summary: "make an Ed25519 key pair for signing remote commands",
		Usage:   "--out PREFIX",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "keygen")
			out := fs.String("out", "", "write PREFIX.key (private, mode 0600) and PREFIX.pub")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if *out == "" || fs.NArg() != 0 {
				return usagef("--out is required and no positional arguments are taken")
			}
			name := filepath.Base(*out)
			priv, pubPath := *out+".key", *out+".pub"
			pub, err := remote.GenerateKey(priv, pubPath)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "wrote %s (private: keep it off the boxes; mode 0600) and %s\nfingerprint %s\n\n", priv, pubPath, remote.Fingerprint(pub))
			fmt.Fprintf(env.Stdout, "Trust it in the configuration file of every box that should accept it:\n\nremote:\n  trust_keys:\n    %s: %s\n\n",
				keyName(name), base64.StdEncoding.EncodeToString(pub))
			fmt.Fprintf(env.Stdout, "(or send the signed trust-keys command). Sign commands with:\n  inspectd sign --key %s --command NAME < body.json\n", priv)
			return nil
		},
	}
}

// keyName turns a file name into a trust key name.
func keyName(s string) string {
	s = strings.TrimSuffix(s, ".key")
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 || b.Len() > 64 {
		return "key"
	}
	return b.String()
}

// cmdSign wraps a command body read from stdin in a signed envelope.
func cmdSign() *Command {
	return &Command{
		Name:    "sign",
		Summary: "sign a remote command body (stdin) for boxes that trust the key",
		Usage:   "--key FILE [--command NAME] [--target T] [--name KEY] < body.json",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "sign")
			keyFile := fs.String("key", "", "private key file written by inspectd keygen")
			command := fs.String("command", "config", "command the body is for: the envelope is good for this command only")
			target := fs.String("target", "*", `where it may run: "*", "device/<device_id>", "fleet" or "group/<group>"`)
			name := fs.String("name", "", "trust key name on the boxes (default: the key file's name without .key)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if *keyFile == "" || fs.NArg() != 0 {
				return usagef("--key is required and the body comes on stdin")
			}
			if !slices.Contains(remote.Names(), *command) {
				// The boxes would refuse it as an unknown command, after
				// the envelope was carried to them.
				return usagef("--command %q is not a remote command (%s)", *command, strings.Join(remote.Names(), ", "))
			}
			if *name == "" {
				*name = keyName(filepath.Base(*keyFile))
			}
			priv, err := remote.LoadPrivateKey(*keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			body, err := io.ReadAll(io.LimitReader(env.Stdin, maxSignInput+1))
			if err != nil {
				return fmt.Errorf("read the body from stdin: %w", err)
			}
			if len(body) > maxSignInput {
				return fmt.Errorf("the body on stdin is over %d bytes", maxSignInput)
			}
			if _, err := remote.CheckBody(body); err != nil {
				return fmt.Errorf("the body on stdin is not a command body: %w", err)
			}
			e, err := remote.Sign(priv, *name, *target, *command, body, time.Now(), nil)
			if err != nil {
				return err
			}
			given := false
			fs.Visit(func(f *flag.Flag) { given = given || f.Name == "target" })
			if !given {
				// The envelope is good on every box that trusts the key:
				// say so, since a copy sent to another box runs there too.
				fmt.Fprintf(env.Stderr, "inspectd sign: signed for every box that trusts key %q (target *); --target device/<id> limits it to one\n", *name)
			}
			out, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(env.Stdout, "%s\n", out)
			return err
		},
	}
}
