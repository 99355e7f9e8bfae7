package node

import "golang.org/x/sys/unix"

// parentOf returns the parent pid of pid, from the kernel's process table
// (macOS has no /proc), or -1.
func parentOf(pid int) int {
	if pid <= 0 {
		return -1
	}
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) {
		return -1
	}
	return int(kp.Eproc.Ppid)
}
