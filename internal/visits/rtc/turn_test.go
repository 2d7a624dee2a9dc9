package rtc_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/visits/rtc/rtctest"
)

// A family whose network lets nothing through but the TURN server reaches the
// visit through it, with the visit's own short-lived credentials.
func TestAFamilyBehindAStrictNATComesThroughTURN(t *testing.T) {
	sfu := newSFU(t)
	turn, err := rtc.StartTURN(rtc.TURNConfig{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", Host: "127.0.0.1", RelayIP: net.ParseIP("127.0.0.1"),
		Peers: []net.IP{net.ParseIP("127.0.0.1")}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer turn.Close()
	server, err := turn.Credentials("visit-4", time.Now().Add(time.Hour))
	if err != nil || len(server.URLs) != 2 {
		t.Fatalf("credentials %+v %v", server, err)
	}
	room, _, err := sfu.Open(rtc.RoomConfig{ID: "visit-4", Ends: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			var urls []string
			for _, u := range server.URLs {
				if u[len(u)-3:] == transport {
					urls = append(urls, u)
				}
			}
			relayed := rtctest.NewClientWith(t, "family", webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay,
				ICEServers: []webrtc.ICEServer{{URLs: urls, Username: server.Username, Credential: server.Credential}}})
			resident := rtctest.NewClient(t, "resident")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			relayed.Join(room, rtc.Family, true)
			resident.Join(room, rtc.Resident, true)
			go relayed.Publish(ctx)
			go resident.Publish(ctx)
			rtctest.Eventually(t, "media both ways through the relay", func() bool { return relayed.Got("resident") > 50 && resident.Got("family") > 50 })
			pair, err := relayed.PC.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
			if err == nil && pair != nil && pair.Local.Typ != webrtc.ICECandidateTypeRelay {
				t.Fatalf("the family's side went %s, not through the relay", pair.Local.Typ)
			}
		})
	}
}
