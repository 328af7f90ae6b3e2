//go:build !unix

package dataset

import "os"

// openFlags opens an image file read-only; OpenImageFile's check before
// the open keeps named pipes out where there is no O_NONBLOCK.
const openFlags = os.O_RDONLY
