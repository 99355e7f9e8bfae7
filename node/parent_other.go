//go:build !linux && !darwin

package node

// parentOf cannot tell a process's parent here: the hook then needs --as or
// PAF_NAME.
func parentOf(int) int { return -1 }
