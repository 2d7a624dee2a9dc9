package rtc

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
)

// TURNConfig is the embedded TURN server, for families behind a NAT or firewall
// that lets no UDP through to the media port: it relays their media to the SFU,
// over UDP or over TCP.
type TURNConfig struct {
	UDP, TCP string // listen addresses; "" leaves that transport off
	// Host is what clients are told to reach it at (the server's public name or
	// address), and RelayIP the address relays are opened on and announced as.
	Host    string
	RelayIP net.IP
	// Secret signs the short-lived credentials; servers behind one name share it.
	Secret string
	// Peers are the only addresses a relay may reach: the SFU's. A TURN server
	// that relayed anywhere would open the server's network to whoever booked.
	Peers []net.IP
}

// TURN is the embedded TURN server.
type TURN struct {
	server *turn.Server
	cfg    TURNConfig
	urls   []string
}

// StartTURN starts the TURN server; a missing secret is made up (then only this
// process can check its credentials).
func StartTURN(cfg TURNConfig, log *slog.Logger) (*TURN, error) {
	if cfg.Secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		cfg.Secret = base64.RawStdEncoding.EncodeToString(b)
	}
	relay := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.RelayIP, Address: "0.0.0.0"}
	}
	permit := func(_ net.Addr, peer net.IP) bool {
		return slices.ContainsFunc(cfg.Peers, func(ip net.IP) bool { return ip.Equal(peer) })
	}
	logs := pionLogs{log}
	sc := turn.ServerConfig{Realm: "kinlink", LoggerFactory: logs, AuthHandler: turn.LongTermTURNRESTAuthHandler(cfg.Secret, logs.NewLogger("turn"))}
	t := &TURN{cfg: cfg}
	if cfg.UDP != "" {
		pc, err := net.ListenPacket("udp4", cfg.UDP)
		if err != nil {
			return nil, fmt.Errorf("rtc: TURN over UDP on %s: %w", cfg.UDP, err)
		}
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: relay(), PermissionHandler: permit})
		t.urls = append(t.urls, fmt.Sprintf("turn:%s?transport=udp", net.JoinHostPort(cfg.Host, port(pc.LocalAddr()))))
	}
	if cfg.TCP != "" {
		ln, err := net.Listen("tcp4", cfg.TCP)
		if err != nil {
			return nil, fmt.Errorf("rtc: TURN over TCP on %s: %w", cfg.TCP, err)
		}
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: ln, RelayAddressGenerator: relay(), PermissionHandler: permit})
		t.urls = append(t.urls, fmt.Sprintf("turn:%s?transport=tcp", net.JoinHostPort(cfg.Host, port(ln.Addr()))))
	}
	s, err := turn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("rtc: TURN: %w", err)
	}
	t.server = s
	return t, nil
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// Credentials are a participant's ICE server for one visit: TURN with a user
// name and password that expire at until (RFC 8489 long-term credentials in the
// TURN REST form, "expiry:visit").
func (t *TURN) Credentials(visitID string, until time.Time) (webrtc.ICEServer, error) {
	user, pass, err := turn.GenerateLongTermTURNRESTCredentials(t.cfg.Secret, "visit-"+visitID, time.Until(until))
	if err != nil {
		return webrtc.ICEServer{}, err
	}
	return webrtc.ICEServer{URLs: t.urls, Username: user, Credential: pass}, nil
}

// Close stops the server.
func (t *TURN) Close() error { return t.server.Close() }
