//go:build !unix

package main

// inUse cannot tell on this system; the server's own lock still refuses a
// second server on the file.
func inUse(string) (bool, error) { return false, nil }
