package repos

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Server serves a folder over HTTP on 127.0.0.1.
type Server struct {
	URL string // http://127.0.0.1:PORT/
	srv *http.Server
}

// noConditional drops conditional request headers: tests change files
// within the same second, and a 304 from a second-granular Last-Modified
// would hide the change from the client.
func noConditional(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Range"} {
			r.Header.Del(k)
		}
		h.ServeHTTP(w, r)
	})
}

// Serve starts serving dir on a free loopback port.
func Serve(dir string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL: "http://" + ln.Addr().String() + "/",
		srv: &http.Server{
			Handler:           noConditional(http.FileServer(http.Dir(dir))),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      time.Minute,
		},
	}
	go func() { _ = s.srv.Serve(ln) }() // returns ErrServerClosed on Close
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
