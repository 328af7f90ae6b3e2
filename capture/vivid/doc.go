// Package vivid tests inspectd's camera path against a real V4L2 driver:
// the kernel's virtual video test driver, vivid, in a virtual machine.
//
// `make test-v4l2` (part of `make test`) downloads Debian's kernel package
// (pinned by version and sha256 in the Makefile), packs an initramfs with
// vivid and the modules it needs, busybox, the freshly built inspectd with
// its TFLite library, v4l2-ctl and this package's tests (built with
// `go test -c -tags vivid`), boots it in qemu (vm.sh; init is the VM's
// /init) and reads the result from the serial console. The tests need
// /dev/video0 to be vivid and are built only with the vivid tag, so plain
// `go test ./...` compiles nothing here.
package vivid
