//go:build linux

package dualwrite

// Byte relays for the proxy benchmarks: the floor of any proxy's cost, and
// variants that find where a Go relay's time goes against socat's (one
// process per connection, a select loop, blocking reads and writes).

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// relayModes are the Go byte relays of -load.relays, by name: the mode
// tapSpec.RelayMode gives bytesRelay.
var relayModes = map[string]string{
	"relay":        "copy",   // io.Copy each way (splice(2) on Linux), goroutines on the netpoller
	"relay-rw":     "rw",     // read and write through a buffer each way, goroutines on the netpoller
	"relay-locked": "locked", // a locked OS thread each way, blocking read and write: no netpoller
	"relay-epoll":  "epoll",  // one locked OS thread per connection, epoll and blocking I/O: socat's model
}

// bytesRelay relays every connection to listen to one of servers, round
// robin, copying bytes both ways as mode says (relayModes' values; "" is
// "copy"), until its listener is closed.
func bytesRelay(listen string, servers []string, mode string) (net.Listener, error) {
	relay := map[string]func(c, s *net.TCPConn){
		"": relayCopy, "copy": relayCopy, "rw": relayRW, "locked": relayLocked, "epoll": relayEpoll,
	}[mode]
	if relay == nil {
		return nil, errors.New("unknown relay mode " + mode)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", servers[i%len(servers)])
				if err != nil {
					return
				}
				defer s.Close()
				relay(c.(*net.TCPConn), s.(*net.TCPConn))
			}()
		}
	}()
	return ln, nil
}

func relayCopy(c, s *net.TCPConn) {
	go func() { io.Copy(s, c); s.CloseWrite() }()
	io.Copy(c, s)
}

func relayRW(c, s *net.TCPConn) {
	pipe := func(dst, src *net.TCPConn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go func() { pipe(s, c); s.CloseWrite() }()
	pipe(c, s)
}

// blockingFD duplicates conn's descriptor and puts it (and so conn's, which
// shares the open file) in blocking mode; conn must not be read or written
// afterwards, only closed.
func blockingFD(conn *net.TCPConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(f uintptr) {
		if fd, err = syscall.Dup(int(f)); err == nil {
			err = syscall.SetNonblock(fd, false)
		}
	})
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return err
		}
		b = b[n:]
	}
	return nil
}

func relayLocked(c, s *net.TCPConn) {
	cfd, err := blockingFD(c)
	if err != nil {
		return
	}
	defer syscall.Close(cfd)
	sfd, err := blockingFD(s)
	if err != nil {
		return
	}
	defer syscall.Close(sfd)
	pipe := func(dst, src int) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(src, buf)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 || err != nil || writeAll(dst, buf[:n]) != nil {
				syscall.Shutdown(dst, syscall.SHUT_WR)
				return
			}
		}
	}
	done := make(chan struct{})
	go func() { pipe(sfd, cfd); close(done) }()
	pipe(cfd, sfd)
	<-done
}

func relayEpoll(c, s *net.TCPConn) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfd, err := blockingFD(c)
	if err != nil {
		return
	}
	defer syscall.Close(cfd)
	sfd, err := blockingFD(s)
	if err != nil {
		return
	}
	defer syscall.Close(sfd)
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	defer syscall.Close(ep)
	peer := map[int32]int{int32(cfd): sfd, int32(sfd): cfd}
	for fd := range peer {
		if syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(fd), &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: fd}) != nil {
			return
		}
	}
	buf := make([]byte, 64<<10)
	events := make([]syscall.EpollEvent, 2)
	open := 2
	for open > 0 {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			src, dst := int(ev.Fd), peer[ev.Fd]
			m, err := syscall.Read(src, buf)
			if err == syscall.EINTR {
				continue
			}
			if m <= 0 || err != nil || writeAll(dst, buf[:m]) != nil {
				syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, src, nil)
				syscall.Shutdown(dst, syscall.SHUT_WR)
				open--
			}
		}
	}
}

// TestBytesRelayModes: every relay of relayModes carries a stream both ways
// unchanged and passes the end of it on (the benchmarks' baselines must be
// relays, not something faster that drops bytes).
func TestBytesRelayModes(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i*7 + i>>11)
	}
	for name, mode := range relayModes {
		t.Run(name, func(t *testing.T) {
			ln, err := bytesRelay("127.0.0.1:0", []string{echo.Addr().String()}, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(want)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(c) // up to the echo's close, relayed
			if err != nil {
				t.Fatalf("read through the relay: %v", err)
			}
			if err := <-werr; err != nil {
				t.Fatalf("write through the relay: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("relayed %d bytes, want the %d sent back unchanged", len(got), len(want))
			}
		})
	}
}
