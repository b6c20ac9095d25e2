//go:build !linux

package zkserver

func openFDs() int  { return -1 }
func maxFDs() int64 { return -1 }
