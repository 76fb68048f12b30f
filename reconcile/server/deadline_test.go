package server_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/server"
)

// A request whose body trickles in is cut at the body deadline, though the
// server sets no ReadTimeout; a request without a body on a kept-alive
// connection is not.
func TestBodyReadDeadline(t *testing.T) {
	defer server.SetBodyReadTimeout(300 * time.Millisecond)()
	srv := server.NewHTTPServer("127.0.0.1:0", server.New(serving(t, "rev1"), server.Options{WebhookSecret: []byte("s")}))
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	t.Run("a body that stops arriving is cut", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_, _ = io.WriteString(c, "POST /v1/hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"ref\":")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c) // the server answers (or not) and closes
		if took := time.Since(start); err != nil || took > 5*time.Second {
			t.Fatalf("connection held %s (%v), want it closed soon after the 300ms body deadline", took, err)
		}
	})
	t.Run("a request without a body is not cut", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for i := range 2 {
			if i == 1 {
				time.Sleep(600 * time.Millisecond) // past the body deadline, within IdleTimeout
			}
			_, _ = io.WriteString(c, "GET /v1/stable/cloud/version HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Fatalf("request %d: %q %v", i, line, err)
			}
			for { // skip the header and the 7-byte body
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if l == "\r\n" {
					break
				}
			}
			if _, err := io.ReadFull(r, make([]byte, 7)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
