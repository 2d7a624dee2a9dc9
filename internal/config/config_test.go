package config_test

import (
	"github.com/kinlink/kinlink/internal/visits"
	"os"

	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/config"
)

// load builds a Config from env (name -> value) and args, as `kinlink serve` would.
func load(env map[string]string, args ...string) (config.Config, []string, error) {
	return config.Load("serve", args, func(k string) string { return env[k] }, &bytes.Buffer{})
}

func mustLoad(t *testing.T, env map[string]string, args ...string) config.Config {
	t.Helper()
	cfg, _, err := load(env, args...)
	if err != nil {
		t.Fatalf("load %v %v: %v", env, args, err)
	}
	return cfg
}

// With nothing set, Kinlink runs on its own: SQLite and files under ./data, mail to
// the outbox, local addresses, and the documented limits.
func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, nil)
	want := config.Config{
		Addr: "127.0.0.1:8080", MetricsAddr: "127.0.0.1:9464", BaseURL: "http://localhost:8080", Database: "sqlite:./data/kinlink.db", DataDir: "./data",
		SMTPPort: 587, SMTPTLS: "starttls", MailFrom: "Kinlink <no-reply@localhost>", LogFormat: "text", LogLevel: "info",
		JobWorkers: 2, JobTimeout: time.Minute,
		LoginMaxFailures: 10, LoginWindow: 15 * time.Minute, LoginLockout: 15 * time.Minute, LoginMaxPerAddress: 100,
		RequestsPerEmail: 5, RequestsPerAddress: 50,
		SessionIdle: 2 * time.Hour, SessionMax: 7 * 24 * time.Hour, APITokenTTL: 30 * 24 * time.Hour,
		StaffIdle: 30 * time.Minute, StaffMax: 12 * time.Hour, KioskIdle: 15 * time.Minute,
		// Payments go to the sandbox: no Stripe keys, Stripe's own API when there are.
		PaymentProcessor: "sandbox", StripeSecretKey: "", StripePublishableKey: "", StripeWebhookSecret: "", StripeAPIURL: "",
		DepositSettleAfter: 2 * time.Minute,
		DepositFeedPace:    5,
		Media:              "disk",
		HashConcurrency:    runtime.NumCPU(), HashQueue: 4 * runtime.NumCPU(),
		FFmpeg: "ffmpeg", FFprobe: "ffprobe", VideoWorkers: max(1, runtime.NumCPU()/2), VideoMaxMB: 100,
		// FCC 24-75's interim caps, in mills a minute.
		VisitRateCaps: visits.RateCaps{{Kind: "prison", Mills: 160}, {Kind: "jail", MinPopulation: 1000, Mills: 110},
			{Kind: "jail", MinPopulation: 350, Mills: 120}, {Kind: "jail", MinPopulation: 100, Mills: 140}, {Kind: "jail", Mills: 250}},
		MediaUDP: "0.0.0.0:50000", VideoKbps: 1500, Instance: hostname(t),
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.HTTPS() {
		t.Error("the default set-up claims HTTPS")
	}
	// A setting's variable is its flag's name, so operators can guess one from the other.
	for _, s := range config.Settings() {
		if s.Env != "KINLINK_"+strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")) {
			t.Errorf("flag --%s goes with %s", s.Flag, s.Env)
		}
	}
}

// A setting comes from its flag, else its variable, else the default; a flag's
// value replaces a bad variable's without complaint.
func TestFlagsWinOverEnvironment(t *testing.T) {
	env := map[string]string{"KINLINK_ADDR": ":9000", "KINLINK_LOG_FORMAT": "json", "KINLINK_LOGIN_WINDOW": "30m", "KINLINK_JOB_WORKERS": "8"}
	cfg := mustLoad(t, env, "--addr", "127.0.0.1:9100", "--login-window=1h")
	if cfg.Addr != "127.0.0.1:9100" || cfg.LoginWindow != time.Hour {
		t.Errorf("flags did not win: addr %s, window %v", cfg.Addr, cfg.LoginWindow)
	}
	if cfg.LogFormat != "json" || cfg.JobWorkers != 8 {
		t.Errorf("variables without flags were not used: %s %d", cfg.LogFormat, cfg.JobWorkers)
	}
	if cfg.LogLevel != "info" {
		t.Errorf("a setting given nowhere: %s", cfg.LogLevel)
	}
	if cfg := mustLoad(t, map[string]string{"KINLINK_LOG_LEVEL": "loud"}, "--log-level", "warn"); cfg.LogLevel != "warn" {
		t.Errorf("a flag over a bad variable: %s", cfg.LogLevel)
	}
	// An empty variable is as good as unset.
	if cfg := mustLoad(t, map[string]string{"KINLINK_SMTP_PORT": ""}); cfg.SMTPPort != 587 {
		t.Errorf("an empty variable: %d", cfg.SMTPPort)
	}
	// What follows the settings is left to the command.
	_, rest, err := load(nil, "--log-level", "debug", "roster.csv", "--apply")
	if err != nil || strings.Join(rest, " ") != "roster.csv --apply" {
		t.Errorf("arguments after the settings: %q %v", rest, err)
	}
}

// Every setting with a check refuses a bad value with one line that names where the
// value came from (the variable, or the flag when a flag gave it), shows the value
// and says what is accepted.
func TestEachBadValueStopsWithOneLineNamingTheSetting(t *testing.T) {
	bad := map[string][]string{
		"addr":                   {"8080", "localhost", "127.0.0.1:"},
		"base-url":               {"kinlink.example.org", "ftp://kinlink.example.org", "https://", "https://kinlink.example.org/?a=1", "https://kinlink.example.org/#top"},
		"database":               {"mysql://x", "sqlite:", "kinlink.db"},
		"metrics-addr":           {"9464", "on"},
		"data-dir":               {"   "},
		"smtp-port":              {"0", "65536", "smtp", "25.5"},
		"smtp-tls":               {"ssl"},
		"mail-from":              {"not an address", "Kinlink"},
		"log-format":             {"xml"},
		"log-level":              {"loud"},
		"job-workers":            {"0", "65"},
		"trusted-proxies":        {"10.0.0.0/8,proxy.internal", "300.1.1.1"},
		"login-max-failures":     {"2", "101"},
		"login-window":           {"59s", "25h", "15", "a while"},
		"login-lockout":          {"30s", "48h"},
		"login-max-per-address":  {"9", "100001"},
		"requests-per-email":     {"0", "1001"},
		"requests-per-address":   {"0", "100001"},
		"session-idle":           {"4m", "721h"},
		"session-max":            {"59m", "2161h"},
		"api-token-ttl":          {"30m", "8761h"},
		"staff-session-idle":     {"30s", "9h"},
		"staff-session-max":      {"30m", "25h"},
		"kiosk-session-idle":     {"29s", "16m"}, // at most SECURITY.md 22's 15 minutes
		"payment-processor":      {"paypal", "Stripe", "stripe "},
		"stripe-secret-key":      {"pk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_short", "sk_prod_4eC39HqLyjWDarjtT1zdp7dc", "whsec_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39Hq LyjWDarjt"},
		"stripe-publishable-key": {"sk_test_4eC39HqLyjWDarjtT1zdp7dc", "pk_testing", "pk_test_abc", "pk_demo_4eC39HqLyjWDarjtT1zdp7dc"},
		"stripe-webhook-secret":  {"sk_test_4eC39HqLyjWDarjtT1zdp7dc", "whsec_short", "whsec_abc de12345678", "4eC39HqLyjWDarjtT1zdp7dc"},
		"stripe-api-url":         {"api.stripe.com", "ftp://api.stripe.com", "http://api.stripe.com", "https://api.stripe.com/v1", "https://api.stripe.com?x=1", "https://sk_live_x@api.stripe.com"},
		"deposit-settle-after":   {"500ms", "61m", "soon"},
		"deposit-feed-pace":      {"0", "1001", "fast"},
		"media":                  {"ftp"},
		"s3-endpoint":            {"s3.example.org", "https://s3.example.org/photos", "https://key:secret@s3.example.org", "https://s3.example.org?x=1"},
		"s3-prefix":              {"/kinlink/", "a/../b"},
		"hash-concurrency":       {"0", "257"},
		"hash-queue":             {"-1", "10001"},
		"job-timeout":            {"500ms", "2h"},
		"ffmpeg":                 {"ffmpeg -y"},
		"ffprobe":                {" "},
		"video-workers":          {"0", "65"},
		"video-max-mb":           {"0", "5000", "1.5"},
		"video-visits":           {"yes", "ON"},
		"media-udp":              {"50000", "host"},
		"media-public-ips":       {"example.org", "1.2.3"},
		"video-kbps":             {"50", "9000", "fast"},
		"instance":               {"two words", "ünï"},
		"instance-url":           {"10.0.0.5:8080", "ftp://10.0.0.5", "http://", "http://10.0.0.5:8080/kinlink", "http://10.0.0.5:8080?x=1", "http://user:pass@10.0.0.5"},
		"turn-udp":               {"3478"},
		"turn-tcp":               {"host"},
		"turn-secret":            {"shortsecret"},
		"visit-rate-caps":        {"prison=0.16 prison=0.15", "jail:x=0.1", "camp=0.1", "prison=0.1234", "prison=-1", "prison"},
	}
	// A secret's bad value is not shown, not even in the error about it.
	// Nor is a wrong publishable key, which may be the secret one pasted there.
	secrets := map[string]bool{"turn-secret": true, "stripe-secret-key": true, "stripe-publishable-key": true, "stripe-webhook-secret": true}
	checked := map[string]bool{}
	for _, s := range config.Settings() {
		for _, v := range bad[s.Flag] {
			checked[s.Flag] = true
			for _, how := range []struct {
				name string
				env  map[string]string
				args []string
			}{
				{s.Env, map[string]string{s.Env: v}, nil},
				{"--" + s.Flag, nil, []string{"--" + s.Flag, v}},
			} {
				_, _, err := load(how.env, how.args...)
				if err == nil {
					t.Errorf("%s=%q was accepted", how.name, v)
					continue
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "setting "+how.name+" is ") || !strings.Contains(msg, "accepted: ") {
					t.Errorf("%s=%q: %q", how.name, v, msg)
				}
				switch {
				case secrets[s.Flag]:
					if strings.Contains(msg, v) || !strings.Contains(msg, "a secret not shown here") {
						t.Errorf("%s=%q: a secret is shown: %q", how.name, v, msg)
					}
				case !strings.Contains(v, "@") && !strings.Contains(msg, strconv.Quote(v)):
					t.Errorf("%s=%q: the value is not shown: %q", how.name, v, msg)
				}
			}
		}
	}
	for flag := range bad {
		if !checked[flag] {
			t.Errorf("no setting --%s", flag)
		}
	}
	// The settings that accept any text are the ones without a check.
	for _, s := range config.Settings() {
		if !checked[s.Flag] {
			switch s.Flag {
			case "tls-cert", "tls-key", "smtp-host", "smtp-user", "smtp-password", "s3-bucket", "s3-region", "s3-access-key", "s3-secret-key":
			default:
				t.Errorf("--%s has no bad value in this test", s.Flag)
			}
		}
	}
}

// Numbers and durations are accepted up to and including their limits.
func TestLimitsAreInclusive(t *testing.T) {
	cfg := mustLoad(t, map[string]string{
		"KINLINK_SMTP_PORT": "65535", "KINLINK_JOB_WORKERS": "1", "KINLINK_LOGIN_MAX_FAILURES": "3", "KINLINK_HASH_QUEUE": "0",
		"KINLINK_LOGIN_WINDOW": "24h", "KINLINK_LOGIN_LOCKOUT": "1m", "KINLINK_STAFF_SESSION_IDLE": "1m", "KINLINK_STAFF_SESSION_MAX": "24h",
		"KINLINK_JOB_TIMEOUT": "1s", "KINLINK_SESSION_IDLE": "1h30m", "KINLINK_API_TOKEN_TTL": "8760h", "KINLINK_KIOSK_SESSION_IDLE": "30s",
	})
	if cfg.SMTPPort != 65535 || cfg.JobWorkers != 1 || cfg.LoginMaxFailures != 3 || cfg.HashQueue != 0 {
		t.Errorf("numbers at their limits: %d %d %d %d", cfg.SMTPPort, cfg.JobWorkers, cfg.LoginMaxFailures, cfg.HashQueue)
	}
	if cfg.LoginWindow != 24*time.Hour || cfg.LoginLockout != time.Minute || cfg.StaffIdle != time.Minute || cfg.StaffMax != 24*time.Hour ||
		cfg.JobTimeout != time.Second || cfg.SessionIdle != 90*time.Minute || cfg.APITokenTTL != 365*24*time.Hour || cfg.KioskIdle != 30*time.Second {
		t.Errorf("durations: %+v", cfg)
	}
}

// An error about a setting that holds an address never prints its password.
func TestErrorsHideCredentials(t *testing.T) {
	for env, v := range map[string]string{
		"KINLINK_DATABASE":    "mysql://kinlink:secretpw@db.internal/kinlink",
		"KINLINK_S3_ENDPOINT": "https://AKIAX:secretpw@s3.example.org/bucket",
		"KINLINK_BASE_URL":    "https://user:secretpw@kinlink.example.org/?x=1",
	} {
		_, _, err := load(map[string]string{env: v})
		if err == nil {
			t.Errorf("%s=%q was accepted", env, v)
			continue
		}
		if strings.Contains(err.Error(), "secretpw") || !strings.Contains(err.Error(), "…@") {
			t.Errorf("%s: %q", env, err)
		}
	}
}

// Settings that only work together are refused apart, naming what is missing.
func TestSettingsThatGoTogether(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a certificate without a key", map[string]string{"KINLINK_TLS_CERT": "/etc/kinlink/cert.pem"}, "KINLINK_TLS_CERT and KINLINK_TLS_KEY go together"},
		{"a key without a certificate", map[string]string{"KINLINK_TLS_KEY": "/etc/kinlink/key.pem"}, "KINLINK_TLS_CERT and KINLINK_TLS_KEY go together"},
		{"s3 without its bucket and keys", map[string]string{"KINLINK_MEDIA": "s3", "KINLINK_S3_ENDPOINT": "https://s3.example.org"},
			"KINLINK_MEDIA is s3, which also needs KINLINK_S3_BUCKET, KINLINK_S3_ACCESS_KEY, KINLINK_S3_SECRET_KEY"},
		{"an s3 setting with disk media", map[string]string{"KINLINK_S3_REGION": "us-east-1"}, "setting KINLINK_S3_REGION is given but KINLINK_MEDIA is disk"},
		{"s3 settings with disk media", map[string]string{"KINLINK_S3_BUCKET": "photos", "KINLINK_S3_PREFIX": "kinlink/"},
			"settings KINLINK_S3_BUCKET, KINLINK_S3_PREFIX are given but KINLINK_MEDIA is disk"},
		{"stripe without its keys", map[string]string{"KINLINK_PAYMENT_PROCESSOR": "stripe"},
			"KINLINK_PAYMENT_PROCESSOR is stripe, which also needs KINLINK_STRIPE_SECRET_KEY, KINLINK_STRIPE_PUBLISHABLE_KEY, KINLINK_STRIPE_WEBHOOK_SECRET"},
		{"stripe without its webhook secret", map[string]string{"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": testSecretKey,
			"KINLINK_STRIPE_PUBLISHABLE_KEY": testPublishableKey}, "KINLINK_PAYMENT_PROCESSOR is stripe, which also needs KINLINK_STRIPE_WEBHOOK_SECRET"},
		{"a stripe key with the sandbox", map[string]string{"KINLINK_STRIPE_SECRET_KEY": testSecretKey},
			"setting KINLINK_STRIPE_SECRET_KEY is given but KINLINK_PAYMENT_PROCESSOR is sandbox"},
		{"stripe settings with the sandbox", map[string]string{"KINLINK_STRIPE_WEBHOOK_SECRET": testWebhookSecret, "KINLINK_STRIPE_API_URL": "http://localhost:12111"},
			"settings KINLINK_STRIPE_WEBHOOK_SECRET, KINLINK_STRIPE_API_URL are given but KINLINK_PAYMENT_PROCESSOR is sandbox"},
		{"a test key with a live one", stripeEnv(map[string]string{"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_live_51HxyzABCDEFGH12345678"}),
			"KINLINK_STRIPE_SECRET_KEY and KINLINK_STRIPE_PUBLISHABLE_KEY are keys of different modes (test and live)"},
		{"live keys without https", stripeEnv(map[string]string{"KINLINK_STRIPE_SECRET_KEY": "rk_live_51HxyzABCDEFGH12345678", "KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_live_51HxyzABCDEFGH12345678"}),
			"KINLINK_STRIPE_SECRET_KEY is a live key but KINLINK_BASE_URL is not https://"},
	} {
		_, _, err := load(tc.env)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
		for _, secret := range []string{testSecretKey, testWebhookSecret, "rk_live_51HxyzABCDEFGH12345678"} {
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error shows a secret: %v", tc.name, err)
			}
		}
	}
	cfg := mustLoad(t, map[string]string{"KINLINK_TLS_CERT": "/c.pem", "KINLINK_TLS_KEY": "/k.pem"})
	if !cfg.HTTPS() {
		t.Error("a server with a certificate does not say HTTPS")
	}
	cfg = mustLoad(t, map[string]string{"KINLINK_MEDIA": "s3", "KINLINK_S3_ENDPOINT": "http://minio.internal:9000/", "KINLINK_S3_BUCKET": "photos",
		"KINLINK_S3_ACCESS_KEY": "AKIA", "KINLINK_S3_SECRET_KEY": "secret", "KINLINK_S3_PREFIX": "kinlink/"})
	if cfg.S3Endpoint != "minio.internal:9000" || cfg.S3TLS || cfg.S3Bucket != "photos" || cfg.S3Prefix != "kinlink/" {
		t.Errorf("s3 settings: %+v", cfg)
	}
	if cfg := mustLoad(t, map[string]string{"KINLINK_MEDIA": "s3", "KINLINK_S3_ENDPOINT": "https://s3.example.org", "KINLINK_S3_BUCKET": "photos",
		"KINLINK_S3_ACCESS_KEY": "AKIA", "KINLINK_S3_SECRET_KEY": "secret"}); !cfg.S3TLS {
		t.Error("an https endpoint without TLS")
	}
}

// Stripe keys as the dashboard shows them.
const (
	testSecretKey      = "sk_test_51HxyzABCDEFGH12345678"
	testPublishableKey = "pk_test_51HxyzABCDEFGH12345678"
	testWebhookSecret  = "whsec_0123456789abcdefABCDEF"
)

// stripeEnv is a complete Stripe set-up in test mode, with changes.
func stripeEnv(changes map[string]string) map[string]string {
	env := map[string]string{"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": testSecretKey,
		"KINLINK_STRIPE_PUBLISHABLE_KEY": testPublishableKey, "KINLINK_STRIPE_WEBHOOK_SECRET": testWebhookSecret}
	for k, v := range changes {
		env[k] = v
	}
	return env
}

// Stripe takes its three keys, of one mode; live keys need an HTTPS site; the API
// is Stripe's own unless a local stand-in is named.
func TestStripeSettings(t *testing.T) {
	cfg := mustLoad(t, stripeEnv(nil))
	if cfg.PaymentProcessor != "stripe" || cfg.StripeSecretKey != testSecretKey || cfg.StripePublishableKey != testPublishableKey ||
		cfg.StripeWebhookSecret != testWebhookSecret || cfg.StripeAPIURL != "" {
		t.Errorf("stripe settings: %+v", cfg)
	}
	cfg = mustLoad(t, stripeEnv(map[string]string{"KINLINK_STRIPE_SECRET_KEY": "rk_live_51HxyzABCDEFGH12345678",
		"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_live_51HxyzABCDEFGH12345678", "KINLINK_BASE_URL": "https://kinlink.example.org"}))
	if cfg.StripeSecretKey != "rk_live_51HxyzABCDEFGH12345678" {
		t.Errorf("a restricted live key: %q", cfg.StripeSecretKey)
	}
	for given, want := range map[string]string{"http://localhost:12111/": "http://localhost:12111", "http://127.0.0.1:12111": "http://127.0.0.1:12111",
		"http://[::1]:12111": "http://[::1]:12111", "https://stripe-mock.internal": "https://stripe-mock.internal"} {
		if cfg := mustLoad(t, stripeEnv(map[string]string{"KINLINK_STRIPE_API_URL": given})); cfg.StripeAPIURL != want {
			t.Errorf("API URL %q: %q, want %q", given, cfg.StripeAPIURL, want)
		}
	}
	// --help shows no key: they have no default.
	var out bytes.Buffer
	config.PrintUsage(&out, "serve")
	if strings.Contains(out.String(), "sk_test_5") || !strings.Contains(out.String(), "KINLINK_STRIPE_SECRET_KEY") {
		t.Errorf("help: %s", out.String())
	}
}

// Values are read the way an operator writes them.
func TestValuesAsOperatorsWriteThem(t *testing.T) {
	cfg := mustLoad(t, map[string]string{
		"KINLINK_BASE_URL":        "https://kinlink.example.org/",
		"KINLINK_TRUSTED_PROXIES": " 10.1.2.3/8, 192.168.1.5 ,,2001:db8::/32",
		"KINLINK_DATABASE":        "postgresql://kinlink@db.internal/kinlink",
	})
	if cfg.BaseURL != "https://kinlink.example.org" || !cfg.HTTPS() {
		t.Errorf("base URL: %q", cfg.BaseURL)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.5/32"), netip.MustParsePrefix("2001:db8::/32")}
	if len(cfg.TrustedProxies) != len(want) {
		t.Fatalf("trusted proxies: %v", cfg.TrustedProxies)
	}
	for i := range want {
		if cfg.TrustedProxies[i] != want[i] {
			t.Errorf("trusted proxy %d: %v, want %v", i, cfg.TrustedProxies[i], want[i])
		}
	}
	_, _, err := load(map[string]string{"KINLINK_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"})
	if err == nil || !strings.Contains(err.Error(), `"proxy.internal" is neither`) {
		t.Errorf("a host name among the proxies: %v", err)
	}
}

// --help prints every setting with its variable and default and stops the command;
// an unknown flag points to --help.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, _, err := config.Load("serve", []string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	if !strings.HasPrefix(help, "Usage: kinlink serve [settings]") || !strings.Contains(help, "a flag wins over the variable") {
		t.Errorf("the usage line: %q", help)
	}
	lines := strings.Split(help, "\n")
	for _, s := range config.Settings() {
		def := s.Default
		if def == "" {
			def = "(none)"
		}
		want := strings.Join(strings.Fields("--"+s.Flag+" "+s.Env+" "+def+" "+s.Usage), " ")
		found := false
		for _, line := range lines {
			if strings.Join(strings.Fields(line), " ") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("--help has no line for --%s %s %s", s.Flag, s.Env, def)
		}
	}
	if _, _, err := config.Load("roster", []string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, config.ErrHelp) {
		t.Errorf("-h: %v", err)
	}

	_, _, err = load(nil, "--colour", "blue")
	if err == nil || errors.Is(err, config.ErrHelp) || !strings.Contains(err.Error(), "colour") || !strings.Contains(err.Error(), "kinlink serve --help") {
		t.Errorf("an unknown flag: %v", err)
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The address other instances reach this one at is a bare http(s)://host:port;
// unset, the server takes its listener's.
func TestInstanceURL(t *testing.T) {
	if cfg := mustLoad(t, map[string]string{"KINLINK_INSTANCE_URL": "http://10.0.0.5:8080/"}); cfg.InstanceURL != "http://10.0.0.5:8080" {
		t.Errorf("with a trailing slash: %q", cfg.InstanceURL)
	}
	if cfg := mustLoad(t, map[string]string{"KINLINK_INSTANCE_URL": "https://kinlink-2.internal"}); cfg.InstanceURL != "https://kinlink-2.internal" {
		t.Errorf("https without a port: %q", cfg.InstanceURL)
	}
	if cfg := mustLoad(t, nil); cfg.InstanceURL != "" {
		t.Errorf("unset: %q", cfg.InstanceURL)
	}
}
