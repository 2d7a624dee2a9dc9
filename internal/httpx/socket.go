package httpx

import (
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// AcceptSocket upgrades a request to a WebSocket for a long-lived exchange (a video
// visit's signalling). Only the page's own origin may open one: a browser always
// sends Origin, and one that names another site is refused (403), so no other site
// can open a socket with a family's cookie; an app without Origin may, with its
// bearer token. The server's read and write timeouts, which the hijacked
// connection would otherwise keep, are cleared first: a visit lasts longer than a
// request.
func AcceptSocket(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
}
