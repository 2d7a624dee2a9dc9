package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/kinlink/kinlink/internal/app"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ledger/stripepay"
)

// stripeAPI is a stand-in for Stripe's API, answering as Stripe documents it: a
// PaymentIntent confirmed with a card succeeds, and a request repeated with an
// Idempotency-Key gets the first answer again (errors included), never a second
// intent. hang holds the answer to the first request until released (Stripe has
// made the intent; the server never hears back); fail answers a 500 for the next
// new key (stored under it, as Stripe stores 500s).
type stripeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	answers  map[string]standInAnswer // by Idempotency-Key
	keys     []string                 // the key of every request, in order
	intents  int
	metadata map[string]string // intent id -> kinlink_key
	hang     chan struct{}
	fail     bool
}

type standInAnswer struct {
	status int
	body   string
}

func newStripeAPI(t *testing.T) *stripeAPI {
	s := &stripeAPI{answers: map[string]standInAnswer{}, metadata: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *stripeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		// The lists the daily reconciliation reads: empty, and not counted.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","url":%q,"has_more":false,"data":[]}`, r.URL.Path)
		return
	}
	r.ParseForm()
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.keys = append(s.keys, key)
	a, seen := s.answers[key]
	hang := s.hang
	if !seen {
		switch {
		case r.URL.Path == "/v1/refunds":
			a = standInAnswer{200, fmt.Sprintf(`{"id":"re_%d","object":"refund","amount":%s,"currency":"usd","status":"succeeded","payment_intent":%q}`,
				len(s.answers)+1, r.PostForm.Get("amount"), r.PostForm.Get("payment_intent"))}
		case r.URL.Path != "/v1/payment_intents":
			a = standInAnswer{404, `{"error":{"type":"invalid_request_error","message":"Unrecognized request URL"}}`}
		case s.fail:
			s.fail = false
			s.intents++ // Stripe made the intent, then failed: the webhook tells
			s.metadata[fmt.Sprintf("pi_%d", s.intents)] = r.PostForm.Get("metadata[kinlink_key]")
			a = standInAnswer{500, `{"error":{"type":"api_error","message":"An unknown error occurred"}}`}
		default:
			s.intents++
			id := fmt.Sprintf("pi_%d", s.intents)
			s.metadata[id] = r.PostForm.Get("metadata[kinlink_key]")
			a = standInAnswer{200, fmt.Sprintf(`{"id":%q,"object":"payment_intent","amount":%s,"amount_received":%s,"currency":"usd","status":"succeeded","metadata":{"kinlink_key":%q}}`,
				id, r.PostForm.Get("amount"), r.PostForm.Get("amount"), s.metadata[id])}
		}
		s.answers[key] = a
		if hang != nil {
			s.hang = nil // only the first
		}
	} else {
		hang = nil
	}
	s.mu.Unlock()
	if !seen && hang != nil {
		<-hang
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_standin")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// sent counts the requests that carried key, and the intents made.
func (s *stripeAPI) sent(key string) (requests, intents int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k == key {
			requests++
		}
	}
	return requests, s.intents
}

const testWebhookSecret = "whsec_0123456789abcdef"

// signedEvent is a Stripe event as Stripe signs it for the webhook endpoint.
func signedEvent(t *testing.T, id, typ string, object map[string]any) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
		"data": map[string]any{"object": object}, "livemode": false, "pending_webhooks": 1, "type": typ})
	if err != nil {
		t.Fatal(err)
	}
	return body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: testWebhookSecret, Timestamp: time.Now()}).Header
}

// A deposit through Stripe whose server is killed after Stripe made the charge and
// before the server heard back: after the restart the settle job asks Stripe again
// under the same key, gets the same intent (one charge), and posts the deposit
// once. Webhooks delivered twice change nothing twice; a dispute is a chargeback.
// A charge Stripe answered with a 500 (stored under its key) waits; a dispute
// delivered before its success waits too; the success webhook, naming the key,
// finishes it. The ledger verifies at the end, on both engines.
func TestDepositSurvivesACrashBetweenChargeAndPosting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildKinlink(t)
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			dbtest.Open(t, e.Setting)
			api := newStripeAPI(t)
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			base := "http://" + addr
			env := append(os.Environ(), "KINLINK_ADDR="+addr, "KINLINK_METRICS_ADDR=off", "KINLINK_DATABASE="+e.Setting, "KINLINK_DATA_DIR="+t.TempDir(),
				"KINLINK_LOG_LEVEL=warn", "KINLINK_PAYMENT_PROCESSOR=stripe", "KINLINK_STRIPE_SECRET_KEY=sk_test_0123456789abcdef",
				"KINLINK_STRIPE_PUBLISHABLE_KEY=pk_test_0123456789abcdef", "KINLINK_STRIPE_WEBHOOK_SECRET="+testWebhookSecret,
				"KINLINK_STRIPE_API_URL="+api.URL, "KINLINK_DEPOSIT_SETTLE_AFTER=1s", "KINLINK_JOB_TIMEOUT=5s")
			start := func(command string) *exec.Cmd { return startReady(t, bin, env, base, command) }
			deposit := func(token, contact, key string) (int, map[string]any, error) {
				body, _ := json.Marshal(map[string]any{"contact_id": contact, "amount_cents": 2000, "payment_token": "pm_card_visa",
					"sender": map[string]string{"name": "María López", "address": "4 Elm St, Austin TX 78701"}})
				return apiCall(base, "POST", "/api/v1/deposits", token, bytes.NewReader(body), "Content-Type", "application/json", "Idempotency-Key", key)
			}
			webhookCall := func(body []byte, sig string) int {
				req, _ := http.NewRequest("POST", base+"/api/v1/webhooks/stripe", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", sig)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			list := func(token string) []map[string]any {
				_, page, _ := apiCall(base, "GET", "/api/v1/deposits", token, nil)
				var out []map[string]any
				for _, d := range page["deposits"].([]any) {
					out = append(out, d.(map[string]any))
				}
				return out
			}
			waitState := func(token, id, want string) map[string]any {
				t.Helper()
				var d map[string]any
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
					if _, d, _ = apiCall(base, "GET", "/api/v1/deposits/"+id, token, nil); d["state"] == want {
						return d
					}
				}
				t.Fatalf("deposit %s never became %s: %v", id, want, d)
				return nil
			}

			first := start("demo")
			token, contact := demoFamily(t, base)
			_, before := api.sent("") // the demo's own top-up went through Stripe too
			api.mu.Lock()
			api.hang = make(chan struct{})
			hang := api.hang
			api.mu.Unlock()
			done := make(chan struct{})
			go func() { deposit(token, contact, "crash-1"); close(done) }()
			// Stripe has the charge request; the server waits for its answer.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, n := api.sent(""); n == before+1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the charge never reached the stand-in")
				}
			}
			first.Process.Kill()
			first.Wait()
			<-done
			close(hang)

			second := start("serve")
			t.Cleanup(func() { second.Process.Signal(syscall.SIGTERM); second.Wait() })
			deps := list(token)
			if len(deps) != 1 {
				t.Fatalf("after the restart the family sees %d deposits", len(deps))
			}
			id := deps[0]["id"].(string)
			d := waitState(token, id, "posted")
			if d["amount_cents"].(float64) != 2000 {
				t.Errorf("posted: %v", d)
			}
			requests, intents := api.sent("deposit:" + id)
			if requests != 2 || intents != before+1 {
				t.Errorf("Stripe got %d requests under the deposit's key and made %d intents; want 2 and 1", requests, intents)
			}
			// Retried by the app with its key: the same deposit, nothing charged.
			if status, again, _ := deposit(token, contact, "crash-1"); status != 201 || again["id"] != id {
				t.Errorf("retry after the crash: %d %v", status, again)
			}
			if _, n := api.sent(""); n != before+1 {
				t.Errorf("the retry made a new intent: %d", n-before)
			}

			// The success webhook, twice, changes nothing; the dispute, twice, reverses it once.
			pi1, pi2 := fmt.Sprintf("pi_%d", before+1), fmt.Sprintf("pi_%d", before+2)
			pi := map[string]any{"id": pi1, "object": "payment_intent", "amount": 2000, "amount_received": 2000, "currency": "usd",
				"status": "succeeded", "metadata": map[string]string{stripepay.KeyMetadata: "deposit:" + id}}
			for range 2 {
				if status := webhookCall(signedEvent(t, "evt_ok_1", "payment_intent.succeeded", pi)); status != 200 {
					t.Fatalf("webhook: %d", status)
				}
			}
			if _, d, _ := apiCall(base, "GET", "/api/v1/deposits/"+id, token, nil); d["state"] != "posted" {
				t.Errorf("after the success webhook: %v", d["state"])
			}
			body, sig := signedEvent(t, "evt_dp_1", "charge.dispute.funds_withdrawn", map[string]any{"id": "dp_1", "object": "dispute", "amount": 2000,
				"currency": "usd", "charge": "ch_1", "payment_intent": pi1, "reason": "fraudulent", "status": "needs_response"})
			// The last hex digit changed, whatever it was (setting the last two to
			// "00" left one signature in 256 unchanged).
			wrong := sig[:len(sig)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(sig, "0")]
			if status := webhookCall(body, wrong); status != 400 {
				t.Errorf("a webhook with a wrong signature: %d", status)
			}
			for range 2 {
				if status := webhookCall(body, sig); status != 200 {
					t.Fatalf("dispute webhook: %d", status)
				}
			}
			waitState(token, id, "reversed")

			// Out of order: Stripe answers the charge with a 500; the dispute comes
			// first, then the success naming the deposit's key.
			api.mu.Lock()
			api.fail = true
			api.mu.Unlock()
			status, second2, _ := deposit(token, contact, "late-1")
			if status != 201 || second2["state"] != "pending" {
				t.Fatalf("a charge answered 500: %d %v", status, second2)
			}
			id2 := second2["id"].(string)
			body, sig = signedEvent(t, "evt_dp_2", "charge.dispute.funds_withdrawn", map[string]any{"id": "dp_2", "object": "dispute", "amount": 2000,
				"currency": "usd", "charge": "ch_2", "payment_intent": pi2, "reason": "fraudulent", "status": "needs_response"})
			if status := webhookCall(body, sig); status != 200 {
				t.Fatalf("early dispute: %d", status)
			}
			if _, d, _ := apiCall(base, "GET", "/api/v1/deposits/"+id2, token, nil); d["state"] != "pending" {
				t.Errorf("a dispute of a charge not known here changed the deposit: %v", d["state"])
			}
			piOK := map[string]any{"id": pi2, "object": "payment_intent", "amount": 2000, "amount_received": 2000, "currency": "usd",
				"status": "succeeded", "metadata": map[string]string{stripepay.KeyMetadata: "deposit:" + id2}}
			if status := webhookCall(signedEvent(t, "evt_ok_2", "payment_intent.succeeded", piOK)); status != 200 {
				t.Fatalf("late success: %d", status)
			}
			waitState(token, id2, "reversed")

			lookup := func(k string) string {
				for _, kv := range env {
					if v, ok := strings.CutPrefix(kv, k+"="); ok {
						return v
					}
				}
				return ""
			}
			var out bytes.Buffer
			if err := app.Run(context.Background(), []string{"ledger", "verify"}, lookup, &out, io.Discard); err != nil || !strings.Contains(out.String(), "ledger verified") {
				t.Errorf("ledger verify: %v %s", err, out.String())
			}
		})
	}
}
