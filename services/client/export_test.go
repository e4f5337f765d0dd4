package client

import "io"

// SetStderr redirects where the generated operator secret is printed, until the returned func restores it.
func SetStderr(w io.Writer) (restore func()) {
	old := stderr
	stderr = w
	return func() { stderr = old }
}
