//go:build !linux

package netns

import "errors"

// runIn is never reached off Linux: Available fails first.
func runIn(string, func() error) error {
	return errors.New("network namespaces need Linux")
}
