package rtc

import (
	"context"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/pion/webrtc/v4"
)

// Message is one signalling message, as JSON over the participant's WebSocket.
//
// From the server: "config" (ice_servers: first, before the offer), "offer" (sdp), "candidate" (candidate), "state" (state, by,
// reason, ends_at, role) and "error" (reason). From the participant: "answer"
// (sdp), "candidate" (candidate), "restart" (ask for an ICE restart after a network
// change: the server answers with a new offer) and "end" (hang up; a family or a
// resident only).
type Message struct {
	Type      string                   `json:"type"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	// State is waiting (for the other side), connected (both sides' media flow),
	// reconnecting (the other side's media stopped; the slot goes on) or ended.
	State  string    `json:"state,omitempty"`
	By     string    `json:"by,omitempty"`     // who ended it: family, resident, staff, system
	Reason string    `json:"reason,omitempty"` // why it ended: hung_up, time_up, or staff's words
	EndsAt time.Time `json:"ends_at,omitzero"` // when the slot ends
	Role   Role      `json:"role,omitempty"`   // the participant's own role
	// ICEServers (in "config", the first message) are the STUN and TURN servers the
	// participant's connection uses, with short-lived credentials.
	ICEServers []webrtc.ICEServer `json:"ice_servers,omitempty"`
}

// Message types.
const (
	TypeConfig    = "config"
	TypeOffer     = "offer"
	TypeAnswer    = "answer"
	TypeCandidate = "candidate"
	TypeState     = "state"
	TypeRestart   = "restart"
	TypeEnd       = "end"
	TypeError     = "error"
)

// States of a room as participants see it.
const (
	StateWaiting      = "waiting"
	StateConnected    = "connected"
	StateReconnecting = "reconnecting"
	StateEnded        = "ended"
)

// Conn is a participant's signalling channel.
type Conn interface {
	Read(ctx context.Context) (Message, error)
	Write(ctx context.Context, m Message) error
	Close(reason string) error
}

// SocketConn is a Conn over a WebSocket (github.com/coder/websocket), JSON text
// messages of at most 64 KiB.
type SocketConn struct{ C *websocket.Conn }

// NewSocketConn wraps an accepted WebSocket.
func NewSocketConn(c *websocket.Conn) SocketConn {
	c.SetReadLimit(64 << 10)
	return SocketConn{C: c}
}

func (s SocketConn) Read(ctx context.Context) (Message, error) {
	var m Message
	err := wsjson.Read(ctx, s.C, &m)
	return m, err
}

func (s SocketConn) Write(ctx context.Context, m Message) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return wsjson.Write(ctx, s.C, m)
}

func (s SocketConn) Close(reason string) error {
	return s.C.Close(websocket.StatusNormalClosure, reason)
}
