// Package config owns Kinlink's settings: one typed Config built from command-line flags
// and KINLINK_* environment variables, validated once at start-up and passed down.
// Nothing here is global; every command builds its own Config.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kinlink/kinlink/internal/database"

	"github.com/kinlink/kinlink/internal/visits"
)

// Config is every setting of a running Kinlink.
type Config struct {
	Addr string // host:port the HTTP server listens on
	// MetricsAddr is where /metrics is served, apart from the public listener; ""
	// serves no metrics.
	MetricsAddr string
	BaseURL     string // public URL used in links and emails
	Database    string // sqlite:PATH or postgres://...
	DataDir     string // media, the mail outbox and other files
	TLSCert     string // PEM certificate; with TLSKey, serve HTTPS directly
	TLSKey      string
	SMTPHost    string // empty: mail goes to the outbox folder
	SMTPPort    int
	SMTPTLS     string // none, starttls, tls
	SMTPUser    string
	SMTPPass    string
	MailFrom    string
	LogFormat   string        // text, json
	LogLevel    string        // debug, info, warn, error
	JobWorkers  int           // background jobs run at once
	JobTimeout  time.Duration // a job running longer is cancelled and retried

	TrustedProxies []netip.Prefix // only these may set X-Forwarded-For

	LoginMaxFailures   int           // failed logins per email before a lock
	LoginWindow        time.Duration // within this time
	LoginLockout       time.Duration // lock length
	LoginMaxPerAddress int           // failed logins per client address in the window
	RequestsPerEmail   int           // sign-up and reset requests per email per hour
	RequestsPerAddress int           // the same per client address per hour

	SessionIdle time.Duration // families' web sessions end after this long unused
	SessionMax  time.Duration // and after this long in any case
	APITokenTTL time.Duration // mobile app tokens last this long
	StaffIdle   time.Duration // staff portal sessions end after this long unused
	StaffMax    time.Duration // and after this long in any case
	KioskIdle   time.Duration // a resident's kiosk session ends after this long unused

	PaymentProcessor string // sandbox (test mode, no real money) or stripe
	// DepositSettleAfter is how long after a deposit the server checks that its
	// charge and posting finished (a server that stopped between them, a processor
	// that did not answer), and finishes them.
	DepositSettleAfter time.Duration
	// DepositFeedPace is how many pages of the trust feed one agency's systems may
	// read a second (with ten times as many at once).
	DepositFeedPace int
	// The Stripe account's keys, with PaymentProcessor stripe: the secret (or
	// restricted) key for the server, the publishable key for Stripe.js, and the
	// signing secret of the webhook endpoint. StripeAPIURL is "" for Stripe's own.
	StripeSecretKey      string
	StripePublishableKey string
	StripeWebhookSecret  string
	StripeAPIURL         string

	Media       string // disk (DATA_DIR/media) or s3
	S3Endpoint  string // host[:port] of an S3-compatible store
	S3TLS       bool   // from the endpoint's scheme: https (default) or http
	S3Bucket    string
	S3Region    string
	S3Prefix    string
	S3AccessKey string
	S3SecretKey string

	HashConcurrency int // password hashes computed at once
	HashQueue       int // more that may wait briefly; the rest get 503

	FFmpeg       string // the programs that convert VideoGrams
	FFprobe      string
	VideoWorkers int   // VideoGram conversions at once
	VideoMaxMB   int64 // the largest VideoGram upload

	// VideoVisits offers video visits: booking, the live call, recording, the
	// portal's pages (docs/visits.md).
	VideoVisits bool
	// VisitRateCaps are the caps on the price of a minute of video, by facility
	// kind and size, as in force by regulation.
	VisitRateCaps visits.RateCaps
	// MediaUDP is the one UDP address video visits' media arrive on; MediaPublicIPs
	// are announced instead of the host's own behind a 1:1 NAT.
	MediaUDP       string
	MediaPublicIPs []string
	// VideoKbps caps each side's video in a visit.
	VideoKbps int
	// Instance names this server among several (video rooms are pinned to one).
	Instance string
	// InstanceURL is where the other instances reach this one (http://host:port),
	// to pass on the signalling of a visit whose room is here; "" : this
	// server's own listener.
	InstanceURL string
	// TURNUDP and TURNTCP are where the embedded TURN server listens ("" : not
	// on that transport); TURNSecret signs its credentials.
	TURNUDP, TURNTCP string
	TURNSecret       string
}

// Setting describes one setting: its flag, its environment variable, its default and
// what it is for. The table drives flags, environment, --help and the README.
type Setting struct {
	Flag    string
	Env     string
	Default string
	Usage   string
	set     func(c *Config, v string) error
}

// Settings lists every setting in the order --help shows them.
func Settings() []Setting {
	return []Setting{
		{"addr", "KINLINK_ADDR", "127.0.0.1:8080", "address to listen on (host:port)", func(c *Config, v string) error {
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return errors.New("accepted: host:port, for example 127.0.0.1:8080 or :8080")
			}
			c.Addr = v
			return nil
		}},
		{"metrics-addr", "KINLINK_METRICS_ADDR", "127.0.0.1:9464", "address of the Prometheus /metrics listener, apart from the public one (host:port); off serves none", func(c *Config, v string) error {
			if v == "off" {
				c.MetricsAddr = ""
				return nil
			}
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return errors.New("accepted: host:port, for example 127.0.0.1:9464, or off")
			}
			c.MetricsAddr = v
			return nil
		}},
		{"base-url", "KINLINK_BASE_URL", "http://localhost:8080", "public URL of this server, used in links and emails", func(c *Config, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				return errors.New("accepted: an absolute http:// or https:// URL with no query, for example https://kinlink.example.org")
			}
			c.BaseURL = strings.TrimSuffix(v, "/")
			return nil
		}},
		{"database", "KINLINK_DATABASE", "sqlite:./data/kinlink.db", "database: sqlite:PATH or postgres://user@host:port/name", func(c *Config, v string) error {
			_, path, sqlite := database.SQLiteSetting(v)
			if !sqlite && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				return errors.New("accepted: sqlite:PATH (for example sqlite:./data/kinlink.db) or a postgres:// URL")
			}
			if sqlite && path == "" {
				return errors.New("accepted: sqlite:PATH with a file path after the colon")
			}
			c.Database = v
			return nil
		}},
		{"data-dir", "KINLINK_DATA_DIR", "./data", "folder for media, the mail outbox and other files", func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("accepted: a folder path")
			}
			c.DataDir = v
			return nil
		}},
		{"tls-cert", "KINLINK_TLS_CERT", "", "PEM certificate file; with --tls-key, serve HTTPS", func(c *Config, v string) error { c.TLSCert = v; return nil }},
		{"tls-key", "KINLINK_TLS_KEY", "", "PEM private key file for --tls-cert", func(c *Config, v string) error { c.TLSKey = v; return nil }},
		{"smtp-host", "KINLINK_SMTP_HOST", "", "SMTP server; empty writes mail as .eml files to DATA_DIR/outbox", func(c *Config, v string) error { c.SMTPHost = v; return nil }},
		{"smtp-port", "KINLINK_SMTP_PORT", "587", "SMTP port", intSetting(1, 65535, func(c *Config) *int { return &c.SMTPPort })},
		{"smtp-tls", "KINLINK_SMTP_TLS", "starttls", "SMTP transport security: none, starttls or tls", func(c *Config, v string) error {
			if !slices.Contains([]string{"none", "starttls", "tls"}, v) {
				return errors.New("accepted: none, starttls, tls")
			}
			c.SMTPTLS = v
			return nil
		}},
		{"smtp-user", "KINLINK_SMTP_USER", "", "SMTP user name (empty: no authentication)", func(c *Config, v string) error { c.SMTPUser = v; return nil }},
		{"smtp-password", "KINLINK_SMTP_PASSWORD", "", "SMTP password", func(c *Config, v string) error { c.SMTPPass = v; return nil }},
		{"mail-from", "KINLINK_MAIL_FROM", "Kinlink <no-reply@localhost>", "sender address of outgoing mail", func(c *Config, v string) error {
			if _, err := mail.ParseAddress(v); err != nil {
				return errors.New(`accepted: an email address, optionally with a name: "Kinlink <no-reply@example.org>"`)
			}
			c.MailFrom = v
			return nil
		}},
		{"log-format", "KINLINK_LOG_FORMAT", "text", "log format: text or json", func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return errors.New("accepted: text, json")
			}
			c.LogFormat = v
			return nil
		}},
		{"log-level", "KINLINK_LOG_LEVEL", "info", "log level: debug, info, warn or error", func(c *Config, v string) error {
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
				return errors.New("accepted: debug, info, warn, error")
			}
			c.LogLevel = v
			return nil
		}},
		{"job-workers", "KINLINK_JOB_WORKERS", "2", "background jobs run at the same time", intSetting(1, 64, func(c *Config) *int { return &c.JobWorkers })},
		{"trusted-proxies", "KINLINK_TRUSTED_PROXIES", "", "comma-separated addresses or CIDR blocks of reverse proxies whose X-Forwarded-For is believed", func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, part := range strings.Split(v, ",") {
				part = strings.TrimSpace(part)
				if part == "" {
					continue
				}
				p, err := netip.ParsePrefix(part)
				if err != nil {
					a, aerr := netip.ParseAddr(part)
					if aerr != nil {
						return fmt.Errorf("accepted: addresses or CIDR blocks separated by commas, for example 10.0.0.0/8,192.168.1.5; %q is neither", part)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}},
		{"login-max-failures", "KINLINK_LOGIN_MAX_FAILURES", "10", "failed logins for one email from unknown devices (or from one known device) within the window that pause it", intSetting(3, 100, func(c *Config) *int { return &c.LoginMaxFailures })},
		{"login-window", "KINLINK_LOGIN_WINDOW", "15m", "the window in which failed logins are counted", durationSetting(time.Minute, 24*time.Hour, func(c *Config) *time.Duration { return &c.LoginWindow })},
		{"login-lockout", "KINLINK_LOGIN_LOCKOUT", "15m", "the first pause of an email, device or address; each further pause of an email or device in a row is twice as long, up to 4h", durationSetting(time.Minute, 24*time.Hour, func(c *Config) *time.Duration { return &c.LoginLockout })},
		{"login-max-per-address", "KINLINK_LOGIN_MAX_PER_ADDRESS", "100", "failed logins from one client address, from unknown devices, within the window that pause the address for unknown devices", intSetting(10, 100000, func(c *Config) *int { return &c.LoginMaxPerAddress })},
		{"requests-per-email", "KINLINK_REQUESTS_PER_EMAIL", "5", "sign-up and password-reset requests per email per hour", intSetting(1, 1000, func(c *Config) *int { return &c.RequestsPerEmail })},
		{"requests-per-address", "KINLINK_REQUESTS_PER_ADDRESS", "50", "sign-up and password-reset requests per client address per hour", intSetting(1, 100000, func(c *Config) *int { return &c.RequestsPerAddress })},
		{"session-idle", "KINLINK_SESSION_IDLE", "2h", "a family's web session ends after this long without use", durationSetting(5*time.Minute, 30*24*time.Hour, func(c *Config) *time.Duration { return &c.SessionIdle })},
		{"session-max", "KINLINK_SESSION_MAX", "168h", "a family's web session ends after this long in any case", durationSetting(time.Hour, 90*24*time.Hour, func(c *Config) *time.Duration { return &c.SessionMax })},
		{"api-token-ttl", "KINLINK_API_TOKEN_TTL", "720h", "how long a mobile app's token lasts", durationSetting(time.Hour, 365*24*time.Hour, func(c *Config) *time.Duration { return &c.APITokenTTL })},
		{"staff-session-idle", "KINLINK_STAFF_SESSION_IDLE", "30m", "a staff portal session ends after this long without use", durationSetting(time.Minute, 8*time.Hour, func(c *Config) *time.Duration { return &c.StaffIdle })},
		{"kiosk-session-idle", "KINLINK_KIOSK_SESSION_IDLE", "15m", "a resident's kiosk session ends after this long without a touch; the kiosk counts down its last 30 seconds first (at most 15m)", durationSetting(30*time.Second, 15*time.Minute, func(c *Config) *time.Duration { return &c.KioskIdle })},
		{"staff-session-max", "KINLINK_STAFF_SESSION_MAX", "12h", "a staff portal session ends after this long in any case", durationSetting(time.Hour, 24*time.Hour, func(c *Config) *time.Duration { return &c.StaffMax })},
		{"payment-processor", "KINLINK_PAYMENT_PROCESSOR", "sandbox", "card payments: sandbox (test mode, no real money) or stripe (needs the three Stripe keys below)", func(c *Config, v string) error {
			if v != "sandbox" && v != "stripe" {
				return errors.New("accepted: sandbox or stripe")
			}
			c.PaymentProcessor = v
			return nil
		}},
		{"deposit-feed-pace", "KINLINK_DEPOSIT_FEED_PACE", "5", "pages of the trust-accounting feed (500 rows each) one agency's systems may read a second, with ten times as many at once; faster reads get 429 with Retry-After", intSetting(1, 1000, func(c *Config) *int { return &c.DepositFeedPace })},
		{"deposit-settle-after", "KINLINK_DEPOSIT_SETTLE_AFTER", "2m", "how long after a deposit the server checks that its charge and posting finished, and finishes them (a server stopped between the two, a card processor that did not answer)", durationSetting(time.Second, time.Hour, func(c *Config) *time.Duration { return &c.DepositSettleAfter })},
		{"stripe-secret-key", "KINLINK_STRIPE_SECRET_KEY", "", "the Stripe account's secret key (sk_live_…, sk_test_…) or a restricted key (rk_…); never shown", stripeKey(stripeSecretKey, "a Stripe secret key sk_live_… or sk_test_…, or a restricted key rk_live_… or rk_test_…, as the Stripe dashboard shows it", func(c *Config) *string { return &c.StripeSecretKey })},
		{"stripe-publishable-key", "KINLINK_STRIPE_PUBLISHABLE_KEY", "", "the Stripe account's publishable key (pk_live_…, pk_test_…), for the card field in the browser", stripeKey(stripePublishableKey, "a Stripe publishable key pk_live_… or pk_test_…", func(c *Config) *string { return &c.StripePublishableKey })},
		{"stripe-webhook-secret", "KINLINK_STRIPE_WEBHOOK_SECRET", "", "the signing secret (whsec_…) of the Stripe webhook endpoint BASE_URL/api/v1/webhooks/stripe; never shown", stripeKey(stripeWebhookSecret, "the webhook endpoint's signing secret whsec_…", func(c *Config) *string { return &c.StripeWebhookSecret })},
		{"stripe-api-url", "KINLINK_STRIPE_API_URL", "", "where Stripe's API is reached; empty: Stripe's own (https://api.stripe.com). For a local stand-in such as stripe-mock", func(c *Config, v string) error {
			if v == "" {
				c.StripeAPIURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || u.Host == "" || u.User != nil || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
				(u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
				return errors.New("accepted: https://host[:port] with no path (http:// only to this machine: localhost, 127.0.0.1, ::1), or empty for Stripe's own")
			}
			c.StripeAPIURL = u.Scheme + "://" + u.Host
			return nil
		}},
		{"media", "KINLINK_MEDIA", "disk", "where photos are kept: disk (DATA_DIR/media) or s3 (an S3-compatible bucket, see the s3 settings)", func(c *Config, v string) error {
			if v != "disk" && v != "s3" {
				return errors.New("accepted: disk or s3")
			}
			c.Media = v
			return nil
		}},
		{"s3-endpoint", "KINLINK_S3_ENDPOINT", "", "URL of the S3-compatible store, e.g. https://s3.us-east-1.amazonaws.com or http://minio.internal:9000", func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
				return errors.New("accepted: https://host[:port] or http://host[:port], with no path (the bucket is its own setting)")
			}
			c.S3Endpoint, c.S3TLS = u.Host, u.Scheme == "https"
			return nil
		}},
		{"s3-bucket", "KINLINK_S3_BUCKET", "", "bucket that holds the photos; it must exist", func(c *Config, v string) error { c.S3Bucket = v; return nil }},
		{"s3-region", "KINLINK_S3_REGION", "", "region of the bucket (empty: asked of the store)", func(c *Config, v string) error { c.S3Region = v; return nil }},
		{"s3-prefix", "KINLINK_S3_PREFIX", "", "put before every object name, e.g. kinlink/ to share a bucket", func(c *Config, v string) error {
			if strings.HasPrefix(v, "/") || strings.Contains(v, "..") {
				return errors.New("accepted: a relative object name prefix such as kinlink/, without .. and not starting with /")
			}
			c.S3Prefix = v
			return nil
		}},
		{"s3-access-key", "KINLINK_S3_ACCESS_KEY", "", "access key id for the bucket", func(c *Config, v string) error { c.S3AccessKey = v; return nil }},
		{"s3-secret-key", "KINLINK_S3_SECRET_KEY", "", "secret access key for the bucket", func(c *Config, v string) error { c.S3SecretKey = v; return nil }},
		{"hash-concurrency", "KINLINK_HASH_CONCURRENCY", strconv.Itoa(runtime.NumCPU()), "password hashes computed at once (about one per core)", intSetting(1, 256, func(c *Config) *int { return &c.HashConcurrency })},
		{"hash-queue", "KINLINK_HASH_QUEUE", strconv.Itoa(4 * runtime.NumCPU()), "password checks that may wait for a free core; beyond them requests get 503 at once", intSetting(0, 10000, func(c *Config) *int { return &c.HashQueue })},
		{"job-timeout", "KINLINK_JOB_TIMEOUT", "1m", "longest a background job may run before it is retried (also how soon a job of a crashed server is picked up again; VideoGram conversions have their own limit and renew it while they run)", durationSetting(time.Second, time.Hour, func(c *Config) *time.Duration { return &c.JobTimeout })},
		{"ffmpeg", "KINLINK_FFMPEG", "ffmpeg", "the ffmpeg program that converts VideoGrams (Debian's ffmpeg package), a path or a name on PATH; without it VideoGrams are not offered", programSetting(func(c *Config) *string { return &c.FFmpeg })},
		{"ffprobe", "KINLINK_FFPROBE", "ffprobe", "the ffprobe program that checks VideoGrams before converting them (installed with ffmpeg)", programSetting(func(c *Config) *string { return &c.FFprobe })},
		{"video-workers", "KINLINK_VIDEO_WORKERS", strconv.Itoa(max(1, runtime.NumCPU()/2)), "VideoGram conversions at once, each at lower priority (half the cores by default, so the web stays fast)", intSetting(1, 64, func(c *Config) *int { return &c.VideoWorkers })},
		{"video-max-mb", "KINLINK_VIDEO_MAX_MB", "100", "largest VideoGram upload, in MB", func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > 4096 {
				return errors.New("accepted: a whole number of MB from 1 to 4096")
			}
			c.VideoMaxMB = n
			return nil
		}},
		{"video-visits", "KINLINK_VIDEO_VISITS", "off", "video visits: on or off (booking, the live call through the embedded SFU, recording with ffmpeg, the portal pages; see docs/visits.md)", func(c *Config, v string) error {
			switch v {
			case "on", "off":
				c.VideoVisits = v == "on"
				return nil
			}
			return errors.New("accepted: on or off")
		}},
		{"media-udp", "KINLINK_MEDIA_UDP", "0.0.0.0:50000", "the UDP address (host:port) every video visit's media arrives on; open this port in the firewall", func(c *Config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("accepted: host:port, for example 0.0.0.0:50000")
			}
			c.MediaUDP = v
			return nil
		}},
		{"media-public-ips", "KINLINK_MEDIA_PUBLIC_IPS", "", "comma-separated public addresses to announce for video media when the server is behind a 1:1 NAT (empty: its own addresses)", func(c *Config, v string) error {
			c.MediaPublicIPs = nil
			for _, ip := range strings.Split(v, ",") {
				if ip = strings.TrimSpace(ip); ip == "" {
					continue
				}
				if _, err := netip.ParseAddr(ip); err != nil {
					return errors.New("accepted: IP addresses separated by commas, for example 203.0.113.7")
				}
				c.MediaPublicIPs = append(c.MediaPublicIPs, ip)
			}
			return nil
		}},
		{"video-kbps", "KINLINK_VIDEO_KBPS", "1500", "the most video a visit's side sends, in kbit/s", intSetting(100, 8000, func(c *Config) *int { return &c.VideoKbps })},
		{"turn-udp", "KINLINK_TURN_UDP", "", "where the embedded TURN server takes UDP (host:port, e.g. 0.0.0.0:3478), for families whose network blocks the media port; empty: off", optionalAddr(func(c *Config) *string { return &c.TURNUDP })},
		{"turn-tcp", "KINLINK_TURN_TCP", "", "where the embedded TURN server takes TCP (host:port, e.g. 0.0.0.0:3478), for networks that let no UDP out; empty: off", optionalAddr(func(c *Config) *string { return &c.TURNTCP })},
		{"turn-secret", "KINLINK_TURN_SECRET", "", "the secret that signs TURN credentials; servers behind one name must share it (empty: a random one per start)", func(c *Config, v string) error {
			if v != "" && len(v) < 16 {
				return errors.New("accepted: at least 16 characters, or empty")
			}
			c.TURNSecret = v
			return nil
		}},
		{"instance", "KINLINK_INSTANCE", "", "this server's name among several (video rooms are pinned to one); empty: the host name", func(c *Config, v string) error {
			if v == "" {
				v, _ = os.Hostname()
			}
			if !instanceName.MatchString(v) {
				return errors.New("accepted: up to 64 letters, digits, dots, dashes and underscores")
			}
			c.Instance = v
			return nil
		}},
		{"instance-url", "KINLINK_INSTANCE_URL", "", "where the other instances reach this one, to pass on the signalling of a video visit whose room is here (http://host:port on the private network); empty: the listener's own address", func(c *Config, v string) error {
			if v == "" {
				c.InstanceURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
				strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
				return errors.New("accepted: http://host:port or https://host:port, with no path, for example http://10.0.0.5:8080, or empty")
			}
			c.InstanceURL = u.Scheme + "://" + u.Host
			return nil
		}},
		{"visit-rate-caps", "KINLINK_VISIT_RATE_CAPS", visits.DefaultRateCaps, "the most a minute of video may cost, by facility kind and average daily population: KIND[:MIN_POPULATION]=DOLLARS entries (defaults: FCC 24-75); a facility no entry covers may only offer free visits", func(c *Config, v string) error {
			caps, err := visits.ParseRateCaps(v)
			if err != nil {
				return fmt.Errorf("%w; accepted: KIND[:MIN_POPULATION]=DOLLARS entries, the kind prison or jail, dollars to the tenth of a cent, for example %q", err, visits.DefaultRateCaps)
			}
			c.VisitRateCaps = caps
			return nil
		}},
	}
}

// optionalAddr is a host:port, or empty for off.
func optionalAddr(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v != "" {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("accepted: host:port, for example 0.0.0.0:3478, or empty for off")
			}
		}
		*field(c) = v
		return nil
	}
}

// The shapes of Stripe's keys: a kind, the mode for API keys, then letters and
// digits.
var (
	stripeSecretKey      = regexp.MustCompile(`^(sk|rk)_(live|test)_[0-9A-Za-z]{8,}$`)
	stripePublishableKey = regexp.MustCompile(`^pk_(live|test)_[0-9A-Za-z]{8,}$`)
	stripeWebhookSecret  = regexp.MustCompile(`^whsec_[0-9A-Za-z+/=]{8,}$`)
)

// stripeKey is a Stripe key of the given shape, or empty.
func stripeKey(shape *regexp.Regexp, accepted string, field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v != "" && !shape.MatchString(v) {
			return errors.New("accepted: " + accepted + ", or empty")
		}
		*field(c) = v
		return nil
	}
}

// stripeMode is "live" or "test", the mode of a Stripe API key.
func stripeMode(key string) string {
	if _, rest, ok := strings.Cut(key, "_"); ok {
		mode, _, _ := strings.Cut(rest, "_")
		return mode
	}
	return ""
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// instanceName is a server's name among several.
var instanceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// programSetting is a program to run: a name found on PATH or a path, never empty
// and never with arguments (they would be taken as part of its name).
func programSetting(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\n") {
			return errors.New("accepted: the program's path or its name on PATH, without arguments")
		}
		*field(c) = v
		return nil
	}
}

func intSetting(lo, hi int, field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("accepted: a whole number from %d to %d", lo, hi)
		}
		*field(c) = n
		return nil
	}
}

func durationSetting(lo, hi time.Duration, field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			return fmt.Errorf("accepted: a duration from %v to %v, for example 15m or 2h", lo, hi)
		}
		*field(c) = d
		return nil
	}
}

// ErrHelp is returned by Load when the user asked for --help; the usage was printed.
var ErrHelp = flag.ErrHelp

// Load builds a Config for the named command from defaults, then the environment, then
// flags, and validates every value. The returned error is one line that names the
// setting and says what is accepted. Arguments left after the flags are returned.
func Load(command string, args []string, getenv func(string) string, usageOut io.Writer) (Config, []string, error) {
	var cfg Config
	settings := Settings()
	fs := flag.NewFlagSet("kinlink "+command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		values[s.Flag] = fs.String(s.Flag, "", s.Usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			PrintUsage(usageOut, command)
			return cfg, nil, ErrHelp
		}
		return cfg, nil, fmt.Errorf("%v (see kinlink %s --help)", err, command)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	for _, s := range settings {
		v, source := s.Default, ""
		if e := getenv(s.Env); e != "" {
			v, source = e, s.Env
		}
		if given[s.Flag] {
			v, source = *values[s.Flag], "--"+s.Flag
		}
		if err := s.set(&cfg, v); err != nil {
			if source == "" {
				source = s.Env
			}
			shown := strconv.Quote(v)
			switch {
			case holdsAddress[s.Flag]:
				shown = strconv.Quote(hideCredentials(v))
			case secretSetting[s.Flag]:
				shown = hideSecret(v)
			}
			return cfg, nil, fmt.Errorf("setting %s is %s; %v", source, shown, err)
		}
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return cfg, nil, errors.New("settings KINLINK_TLS_CERT and KINLINK_TLS_KEY go together: set both to serve HTTPS, or neither")
	}
	if err := cfg.checkMedia(); err != nil {
		return cfg, nil, err
	}
	if err := cfg.checkPayments(); err != nil {
		return cfg, nil, err
	}
	return cfg, fs.Args(), nil
}

// checkMedia: the S3 settings go with KINLINK_MEDIA=s3, all of the needed ones, and
// never without it (photos would quietly go to disk instead).
func (c Config) checkMedia() error {
	needed := []struct{ name, value string }{
		{"KINLINK_S3_ENDPOINT", c.S3Endpoint}, {"KINLINK_S3_BUCKET", c.S3Bucket},
		{"KINLINK_S3_ACCESS_KEY", c.S3AccessKey}, {"KINLINK_S3_SECRET_KEY", c.S3SecretKey},
	}
	missing, given := settingsSet(needed)
	if c.S3Region != "" {
		given = append(given, "KINLINK_S3_REGION")
	}
	if c.S3Prefix != "" {
		given = append(given, "KINLINK_S3_PREFIX")
	}
	switch {
	case c.Media == "s3" && len(missing) > 0:
		return fmt.Errorf("setting KINLINK_MEDIA is s3, which also needs %s", strings.Join(missing, ", "))
	case c.Media == "disk" && len(given) > 0:
		what := "setting " + given[0] + " is"
		if len(given) > 1 {
			what = "settings " + strings.Join(given, ", ") + " are"
		}
		return fmt.Errorf("%s given but KINLINK_MEDIA is disk; set KINLINK_MEDIA=s3 to keep photos in the bucket, or remove them", what)
	}
	return nil
}

// settingsSet splits settings into those left empty and those given.
func settingsSet(settings []struct{ name, value string }) (missing, given []string) {
	for _, n := range settings {
		if n.value == "" {
			missing = append(missing, n.name)
		} else {
			given = append(given, n.name)
		}
	}
	return missing, given
}

// checkPayments: Stripe needs its three keys, of one mode (test or live), and live
// keys an HTTPS site (Stripe.js takes live cards only on HTTPS pages); the Stripe
// settings never go without it (an operator who set them would take the sandbox's
// pretend payments for real ones).
func (c Config) checkPayments() error {
	needed := []struct{ name, value string }{
		{"KINLINK_STRIPE_SECRET_KEY", c.StripeSecretKey}, {"KINLINK_STRIPE_PUBLISHABLE_KEY", c.StripePublishableKey},
		{"KINLINK_STRIPE_WEBHOOK_SECRET", c.StripeWebhookSecret},
	}
	missing, given := settingsSet(needed)
	if c.StripeAPIURL != "" {
		given = append(given, "KINLINK_STRIPE_API_URL")
	}
	switch {
	case c.PaymentProcessor == "stripe" && len(missing) > 0:
		return fmt.Errorf("setting KINLINK_PAYMENT_PROCESSOR is stripe, which also needs %s", strings.Join(missing, ", "))
	case c.PaymentProcessor != "stripe" && len(given) > 0:
		what := "setting " + given[0] + " is"
		if len(given) > 1 {
			what = "settings " + strings.Join(given, ", ") + " are"
		}
		return fmt.Errorf("%s given but KINLINK_PAYMENT_PROCESSOR is %s; set KINLINK_PAYMENT_PROCESSOR=stripe to take cards through Stripe, or remove them", what, c.PaymentProcessor)
	case c.PaymentProcessor != "stripe":
		return nil
	case stripeMode(c.StripeSecretKey) != stripeMode(c.StripePublishableKey):
		return fmt.Errorf("settings KINLINK_STRIPE_SECRET_KEY and KINLINK_STRIPE_PUBLISHABLE_KEY are keys of different modes (%s and %s); take both from the same mode of the Stripe dashboard",
			stripeMode(c.StripeSecretKey), stripeMode(c.StripePublishableKey))
	case stripeMode(c.StripeSecretKey) == "live" && !c.HTTPS():
		return errors.New("setting KINLINK_STRIPE_SECRET_KEY is a live key but KINLINK_BASE_URL is not https://; Stripe takes live cards only on HTTPS pages")
	}
	return nil
}

// secretSetting names the settings that hold a secret, or whose wrong value may be
// one (a secret key pasted as the publishable key): an error about a bad value never
// prints it.
var secretSetting = map[string]bool{"smtp-password": true, "s3-secret-key": true, "turn-secret": true,
	"stripe-secret-key": true, "stripe-publishable-key": true, "stripe-webhook-secret": true}

// hideSecret is what an error says of a secret's bad value: only the kind of Stripe
// key it starts with, which tells a publishable key given as the secret one.
func hideSecret(v string) string {
	if kind, _, ok := strings.Cut(v, "_"); ok && slices.Contains([]string{"sk", "rk", "pk", "whsec"}, kind) {
		return fmt.Sprintf("a secret not shown here (it starts %q)", kind+"_")
	}
	return "a secret not shown here"
}

// holdsAddress names the settings whose value is an address that may carry a user
// name and password (postgres://user:pass@host, https://key:secret@s3...).
var holdsAddress = map[string]bool{"database": true, "s3-endpoint": true, "base-url": true, "smtp-host": true, "instance-url": true, "stripe-api-url": true}

// hideCredentials drops what comes before the "@" of an address, so that an error
// naming a bad setting never prints a password into a log.
func hideCredentials(v string) string {
	at := strings.LastIndex(v, "@")
	if at < 0 {
		return v
	}
	start := 0
	if i := strings.Index(v, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	return v[:start] + "…@" + v[at+1:]
}

// PrintUsage writes the settings table for --help.
func PrintUsage(w io.Writer, command string) {
	fmt.Fprintf(w, "Usage: kinlink %s [settings]\n\nEvery setting is a flag and an environment variable; a flag wins over the variable.\n\n", command)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "flag\tenvironment\tdefault\tmeaning")
	for _, s := range Settings() {
		def := s.Default
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", s.Flag, s.Env, def, s.Usage)
	}
	tw.Flush()
}

// HTTPS reports whether users reach this server over HTTPS, directly or through a
// TLS-terminating proxy; it decides HSTS and Secure cookies.
func (c Config) HTTPS() bool {
	return strings.HasPrefix(c.BaseURL, "https://") || c.TLSCert != ""
}
