package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
)

// webhook takes GitHub's push webhook (and anything that signs its body the
// same way: Gitea, Forgejo) and asks the backend to sync at once. The body
// is only authenticated, not trusted: the sync reads the source itself.
func (h *handler) webhook(w http.ResponseWriter, r *http.Request) int {
	if len(h.secret) == 0 {
		return notFound(w, "the webhook is disabled: start serve with --webhook-secret-file")
	}
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = hAllowPost
		return textError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return textError(w, http.StatusRequestEntityTooLarge, "webhook body larger than 1 MiB")
		}
		return badRequest(w, "reading the webhook body: "+err.Error())
	}
	event := r.Header.Get("X-GitHub-Event")
	delivery := r.Header.Get("X-GitHub-Delivery")
	if !validSignature(h.secret, body, r.Header.Get("X-Hub-Signature-256")) {
		h.log.Warn("webhook rejected: missing or wrong X-Hub-Signature-256",
			"remote", r.RemoteAddr, "event", event, "delivery", delivery)
		return textError(w, http.StatusUnauthorized, "missing or wrong X-Hub-Signature-256: sign the body with HMAC-SHA256 and the shared secret")
	}
	if event == "ping" {
		h.log.Info("webhook ping", "delivery", delivery)
		return writeBody(w, r, hText, nil, []byte("pong\n"))
	}
	h.b.Trigger()
	h.log.Info("webhook: sync triggered", "event", event, "delivery", delivery)
	hdr := w.Header()
	hdr["Content-Type"] = hText
	hdr["Cache-Control"] = hNoCache
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte("sync triggered\n"))
	return http.StatusAccepted
}

// validSignature checks GitHub's "sha256=<hex HMAC-SHA256 of the body>"
// in constant time.
func validSignature(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
