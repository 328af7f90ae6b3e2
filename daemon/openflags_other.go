//go:build !unix

package daemon

import "os"

// readNoWait opens a file to read; the open's Stat refuses what is not a
// regular file.
const readNoWait = os.O_RDONLY
