//go:build !linux

package discovery

// Watch is Linux only (inotify): here it returns [ErrWatchUnsupported], and peers read the
// directory on their timer.
func (l *Local) Watch(stop <-chan struct{}) (*Watcher, error) {
	return nil, ErrWatchUnsupported
}
