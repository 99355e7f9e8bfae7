//go:build !unix

package mcpserver

import "io"

// pollable is a no-op where the stdin pipe cannot join Go's poller.
func pollable(in io.Reader) (io.Reader, func()) { return in, func() {} }

// pollableOut is a no-op where the stdout pipe cannot join Go's poller.
func pollableOut(out io.Writer) (io.Writer, func()) { return out, func() {} }
