package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kinlink/kinlink/internal/api"
	"github.com/kinlink/kinlink/internal/config"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/instances"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/ledger/stripepay"
	"github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/messaging"
	"github.com/kinlink/kinlink/internal/throttle"
	"github.com/kinlink/kinlink/internal/videogram"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
	"github.com/kinlink/kinlink/internal/web"
)

// maxBody is the default limit of a request's body; routes that take more (photos,
// rosters) say so in their surface's route table.
const maxBody = 1 << 20

// services is everything a running Kinlink is made of.
type services struct {
	cfg      config.Config
	log      *slog.Logger
	db       *database.DB
	runner   *jobs.Runner
	mail     *mail.Service
	outbox   string // set when mail goes to the outbox folder
	cat      *i18n.Catalog
	id       *identity.Service
	fac      *facility.Service
	contacts *contacts.Service
	ledger   *ledger.Ledger
	wallets  *ledger.Wallets
	// stripe is the payment processor when it is Stripe (KINLINK_PAYMENT_PROCESSOR),
	// for what only Stripe has: its webhooks (ParseWebhook); nil with the sandbox.
	stripe   *stripepay.Processor
	messages *messaging.Service
	visits   *visits.Service
	deposits *deposits.Service
	blobs    media.Store  // photos and clips
	metrics  http.Handler // /metrics, served on a listener of its own (see serve)
	// reconcileFailures counts this server's daily reconciliations that failed
	// (kinlink_ledger_reconciliation_failures_total).
	reconcileFailures prometheus.Counter

	uploads     *media.Uploads     // resumable uploads (VideoGram clips)
	uploadLocks *httpx.UploadLocks // one set for every way uploads arrive
	videograms  *videogram.Service // nil where ffmpeg is missing: VideoGrams are not offered
	clips       *media.Clips       // ffmpeg, where found
	videoJobs   *jobs.Runner       // conversions, on workers of their own

	instances *instances.Registry // this server among those sharing the database
}

// open builds the services of a command that uses the database: it checks the data
// folder, opens and migrates the database and sets up mail and jobs.
func open(ctx context.Context, cfg config.Config, log *slog.Logger) (*services, error) {
	if err := checkDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	db, err := database.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, m := range applied {
		log.Info("database migrated", "version", m.Version, "name", m.Name)
	}
	s := &services{cfg: cfg, log: log, db: db, reconcileFailures: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kinlink_ledger_reconciliation_failures_total",
		Help: "Daily reconciliations with the payment processor this server could not finish (the processor or the database could not be read).",
	})}
	var sender mail.Sender
	if cfg.SMTPHost != "" {
		sender = mail.NewSMTPSender(mail.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, TLS: cfg.SMTPTLS, User: cfg.SMTPUser, Password: cfg.SMTPPass})
	} else {
		out, err := mail.NewOutboxSender(outboxDir(cfg), log)
		if err != nil {
			db.Close()
			return nil, err
		}
		sender, s.outbox = out, out.Dir()
	}
	s.mail = mail.NewService(cfg.MailFrom, cfg.BaseURL, sender, log)
	s.runner = jobs.NewRunner(db, log, cfg.JobWorkers, cfg.JobTimeout)
	s.runner.Handle(mail.JobKind, s.mail.HandleJob)
	return s, nil
}

// openIdentity loads what serving accounts needs: the language catalogs, the common
// passwords list and the password hasher.
func (s *services) openIdentity(ctx context.Context) error {
	cat, err := i18n.Load()
	if err != nil {
		return err
	}
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		return err
	}
	cfg := s.cfg
	hasher := identity.NewHasher(identity.DefaultHashParams, cfg.HashConcurrency, cfg.HashQueue, 2*time.Second)
	idCfg := identity.DefaultConfig()
	idCfg.BaseURL = cfg.BaseURL
	idCfg.LoginPerEmail = throttle.Rule{Max: cfg.LoginMaxFailures, Window: cfg.LoginWindow, Lockout: cfg.LoginLockout}
	idCfg.LoginPerIP = throttle.Rule{Max: cfg.LoginMaxPerAddress, Window: cfg.LoginWindow, Lockout: cfg.LoginLockout}
	idCfg.RequestsPerEmail = throttle.Rule{Max: cfg.RequestsPerEmail, Window: time.Hour, Lockout: time.Hour}
	idCfg.RequestsPerIP = throttle.Rule{Max: cfg.RequestsPerAddress, Window: time.Hour, Lockout: time.Hour}
	idCfg.WebIdle, idCfg.WebMax, idCfg.APITokenTTL = cfg.SessionIdle, cfg.SessionMax, cfg.APITokenTTL
	idCfg.StaffIdle, idCfg.StaffMax = cfg.StaffIdle, cfg.StaffMax
	id, err := identity.NewService(ctx, s.db, hasher, common, idCfg, s.log)
	if err != nil {
		return err
	}
	id.WakeJobsWith(s.runner.Poke)
	s.fac = facility.NewService(s.db, id, s.log)
	s.fac.SetKioskIdle(cfg.KioskIdle)
	s.contacts = contacts.NewService(s.db, s.fac)
	s.ledger = ledger.New(s.db)
	processor, err := openProcessor(cfg)
	if err != nil {
		return err
	}
	s.stripe, _ = processor.(*stripepay.Processor)
	s.wallets = ledger.NewWallets(s.ledger, processor, s.runner.Poke)
	s.deposits = deposits.NewService(s.db, s.fac, s.contacts, s.ledger, processor, s.log, s.runner)
	s.deposits.SetWallets(s.wallets) // top-ups' disputes come with the processor's events
	if sandbox, ok := processor.(*ledger.Sandbox); ok {
		// The sandbox's disputed test card reports its chargeback to deposits, as
		// Stripe's webhook does.
		sandbox.Report = func(ctx context.Context, ev ledger.PaymentEvent) {
			if err := s.deposits.HandleEvent(ctx, ev); err != nil {
				s.log.Warn("deposits: sandbox event", "event", ev.ID, "err", err)
			}
		}
	}
	s.deposits.SetSettleAfter(cfg.DepositSettleAfter)
	s.deposits.SetFeedPace(cfg.DepositFeedPace)
	s.runner.Handle(deposits.SettleJob, s.deposits.HandleSettle)
	s.runner.Handle(ledger.WalletRefundJob, s.wallets.HandleRefundJob)
	blobs, err := openMedia(ctx, cfg)
	if err != nil {
		return err
	}
	s.messages = messaging.NewService(s.db, s.fac, s.contacts, s.ledger, blobs, media.NewPhotos(media.DecodeBudget), s.wakeJobs)
	// Residents may pay for their replies from their trust money (deposits is
	// made above: it is the trust account).
	s.messages.UseTrust(s.deposits)
	s.visits = visits.NewService(s.db, s.fac, s.contacts, s.ledger, cfg.VisitRateCaps, s.wakeJobs)
	s.runner.Handle(visits.ReminderJob, s.visits.HandleReminder)
	s.blobs = blobs
	s.runner.Handle(messaging.PhotoCheckJob, s.messages.HandlePhotoCheck)
	id.AuditStaffWith(s.fac.RecordStaffEvent)
	s.runner.Handle(identity.ResetJob, id.HandleResetJob)
	s.runner.Handle(identity.ResetWaitJob, id.HandleWaitJob)
	s.cat, s.id = cat, id
	return nil
}

// openProcessor is the payment processor the settings name: the built-in sandbox
// (test mode, no real money), or Stripe.
func openProcessor(cfg config.Config) (ledger.Processor, error) {
	if cfg.PaymentProcessor != stripepay.Name {
		return &ledger.Sandbox{}, nil
	}
	p, err := stripepay.New(stripepay.Settings{SecretKey: cfg.StripeSecretKey, PublishableKey: cfg.StripePublishableKey,
		WebhookSecret: cfg.StripeWebhookSecret, APIURL: cfg.StripeAPIURL})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// webhooks is what verifies the payment processor's events: Stripe's signed
// notifications, or nil for the sandbox (it reports its own).
func (s *services) webhooks() api.Webhooks {
	if s.stripe == nil {
		return nil
	}
	return s.stripe
}

// wakeJobs tells idle job workers that work was queued.
func (s *services) wakeJobs() {
	s.runner.Poke()
	if s.videoJobs != nil {
		s.videoJobs.Poke()
	}
}

// openVideoGrams sets up uploads and, where ffmpeg is installed, VideoGrams: their
// conversions run on workers of their own (as many as may convert at once), so a
// queue of clips never holds up mail. Only a server does: operator commands
// (admin, roster) need neither the folders it makes nor ffmpeg looked for.
func (s *services) openVideoGrams() error {
	cfg := s.cfg
	uploads, err := media.NewUploads(s.db, filepath.Join(cfg.DataDir, "uploads"), cfg.VideoMaxMB<<20)
	if err != nil {
		return err
	}
	s.uploads, s.uploadLocks = uploads, httpx.NewUploadLocks()
	clips, err := media.NewClips(media.ClipSettings{FFmpeg: cfg.FFmpeg, FFprobe: cfg.FFprobe, Workers: cfg.VideoWorkers, MaxBytes: cfg.VideoMaxMB << 20})
	if err != nil {
		s.log.Warn("VideoGrams are not offered", "why", err.Error())
		return nil
	}
	s.clips = clips
	vg, err := videogram.New(s.db, clips, uploads, s.blobs, filepath.Join(cfg.DataDir, "work"), s.log)
	if err != nil {
		return err
	}
	vg.Tell(s.messages)
	s.messages.UseClips(vg)
	s.videograms = vg
	s.videoJobs = jobs.NewRunner(s.db, s.log, cfg.VideoWorkers, cfg.JobTimeout)
	s.videoJobs.HandleLong(videogram.ProcessJob, vg.HandleProcess, videogram.JobLimit(videogram.MaxLimit))
	// A conversion that fails for good refunds its VideoGram instead of leaving it
	// processing with its stamps taken.
	s.videoJobs.OnGiveUp(videogram.ProcessJob, vg.GiveUpProcess)
	return nil
}

// openLiveVisits starts the media server of video visits on its UDP port, and
// their recording. Visits that are not privileged are always recorded, so a
// server without ffmpeg to merge the recordings holds no visits: it fails closed.
func (s *services) openLiveVisits() (*rtc.SFU, error) {
	cfg := s.cfg
	if s.clips == nil {
		return nil, errors.New("video visits are recorded, and their recordings are merged with ffmpeg, which was not found (KINLINK_FFMPEG): install it (Debian: apt-get install ffmpeg) or turn visits off (KINLINK_VIDEO_VISITS=off)")
	}
	if err := s.visits.UseRecordings(s.clips, s.blobs, filepath.Join(cfg.DataDir, "recordings")); err != nil {
		return nil, err
	}
	s.videoJobs.HandleLong(visits.MergeJob, s.visits.HandleMerge, visits.MergeLimit)
	// A server killed during a visit left its rooms' files unmerged.
	if n, err := s.visits.RecoverRecordings(context.Background()); err != nil {
		return nil, err
	} else if n > 0 {
		s.log.Warn("video visits: recordings of rooms an earlier run never closed are merged now", "rooms", n)
	}
	host, _, _ := net.SplitHostPort(cfg.MediaUDP)
	ip, _ := netip.ParseAddr(host)
	sfu, err := rtc.New(rtc.Config{UDP: cfg.MediaUDP, PublicIPs: cfg.MediaPublicIPs, Loopback: ip.IsLoopback()}, s.log)
	if err != nil {
		return nil, fmt.Errorf("video visits: %w (KINLINK_MEDIA_UDP)", err)
	}
	live := visits.LiveSettings{Instance: cfg.Instance, Instances: s.instances, BitrateKbps: cfg.VideoKbps, Log: s.log}
	if cfg.TURNUDP != "" || cfg.TURNTCP != "" {
		turn, err := startTURN(cfg, ip, s.log)
		if err != nil {
			sfu.Close()
			return nil, err
		}
		live.TURN = turn
	}
	s.visits.UseSFU(sfu, live)
	s.log.Info("video visits: media on UDP", "addr", sfu.Addr().String(), "turn", live.TURN != nil)
	return sfu, nil
}

// startTURN starts the embedded TURN server. Its relays reach only this server's
// own addresses (the SFU), and are opened on its first address of its own.
func startTURN(cfg config.Config, media netip.Addr, log *slog.Logger) (*rtc.TURN, error) {
	u, _ := url.Parse(cfg.BaseURL)
	host := u.Hostname()
	var own []net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && (!n.IP.IsLoopback() || media.IsLoopback()) {
				own = append(own, n.IP)
			}
		}
	}
	if len(own) == 0 {
		return nil, errors.New("video visits: TURN: this server has no IPv4 address to relay from")
	}
	peers := slices.Clone(own)
	for _, p := range cfg.MediaPublicIPs {
		peers = append(peers, net.ParseIP(p))
	}
	t, err := rtc.StartTURN(rtc.TURNConfig{UDP: cfg.TURNUDP, TCP: cfg.TURNTCP, Host: host, RelayIP: own[0], Secret: cfg.TURNSecret, Peers: peers}, log)
	if err != nil {
		return nil, fmt.Errorf("video visits: %w (KINLINK_TURN_UDP, KINLINK_TURN_TCP)", err)
	}
	return t, nil
}

// instanceURL is where the other instances reach this one: KINLINK_INSTANCE_URL,
// else the listener's own address, with a listener on every address (0.0.0.0)
// announced at this machine's first IPv4 address that is not loopback.
func instanceURL(cfg config.Config, addr net.Addr) string {
	if cfg.InstanceURL != "" {
		return cfg.InstanceURL
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
					host = n.IP.String()
					break
				}
			}
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// openMedia opens the store of photos that the settings name.
func openMedia(ctx context.Context, cfg config.Config) (media.Store, error) {
	if cfg.Media == "s3" {
		return media.OpenS3(ctx, media.S3Config{Endpoint: cfg.S3Endpoint, TLS: cfg.S3TLS, Bucket: cfg.S3Bucket, Region: cfg.S3Region,
			Prefix: cfg.S3Prefix, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey})
	}
	return media.Disk{Dir: filepath.Join(cfg.DataDir, "media")}, nil
}

func serve(ctx context.Context, command string, args []string, getenv func(string) string, stdout, stderr io.Writer, demo bool) error {
	cfg, rest, err := loadConfig(command, args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("kinlink %s takes no arguments, got %q", command, rest[0])
	}
	log := newLogger(cfg, stderr)
	s, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.db.Close()
	if err := s.openIdentity(ctx); err != nil {
		return err
	}
	if err := s.openVideoGrams(); err != nil {
		return err
	}
	// The listener comes first: its address is where the other instances reach
	// this one, unless KINLINK_INSTANCE_URL says otherwise.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (KINLINK_ADDR): %v", cfg.Addr, pathErr(err))
	}
	defer ln.Close()
	s.instances = instances.New(s.db, cfg.Instance, instanceURL(cfg, ln.Addr()), log)
	if cfg.VideoVisits {
		sfu, err := s.openLiveVisits()
		if err != nil {
			return err
		}
		defer sfu.Close()
	}
	// Start-up hashed once with argon2id (19 MiB) and read the password list: give
	// that memory back now rather than hold it until the scavenger gets to it.
	debug.FreeOSMemory()

	handler, err := s.handler()
	if err != nil {
		return err
	}
	// Metrics say how busy the server is and what fails: for the operator's
	// monitoring, on a listener of their own, never on the public one.
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		// A metrics port in use (a second instance on the host, another exporter)
		// leaves the server without metrics, said in the log, rather than down.
		if mln, err := net.Listen("tcp", cfg.MetricsAddr); err != nil {
			log.Warn("no metrics: cannot listen on KINLINK_METRICS_ADDR (off serves none)", "addr", cfg.MetricsAddr, "err", pathErr(err))
		} else {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", s.metrics)
			metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
			go metricsSrv.Serve(mln)
			defer metricsSrv.Close()
			tell(cfg, stdout, fmt.Sprintf("Metrics for Prometheus on http://%s/metrics", mln.Addr()), "metrics_url", fmt.Sprintf("http://%s/metrics", mln.Addr()))
		}
	}
	var guide demoGuide
	if demo {
		if guide, err = seedDemo(ctx, s); err != nil {
			ln.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	if err := s.instances.Join(ctx); err != nil {
		return err
	}
	log.Info("kinlink started", "version", versionString(), "addr", ln.Addr().String(), "database", string(s.db.Dialect), "base_url", cfg.BaseURL,
		"instance", s.instances.Name(), "instance_url", s.instances.URL(), "payments", s.wallets.Processor().Name())
	tell(cfg, stdout, fmt.Sprintf("Kinlink is listening on %s://%s (public URL %s)", scheme, ln.Addr(), cfg.BaseURL),
		"url", fmt.Sprintf("%s://%s", scheme, ln.Addr()), "public_url", cfg.BaseURL)
	if demo {
		var b strings.Builder
		printDemoGuide(s, guide, &b)
		tell(cfg, stdout, strings.TrimRight(b.String(), "\n"))
	}

	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		var wg sync.WaitGroup
		if s.videoJobs != nil {
			wg.Go(func() { s.videoJobs.Run(jobsCtx) })
		}
		s.runner.Run(jobsCtx)
		wg.Wait()
	}()
	go s.housekeeping(jobsCtx)
	go s.visitSweeps(jobsCtx)
	go s.depositReports(jobsCtx)
	go s.depositSweeps(jobsCtx)
	go s.ledgerReconciliations(jobsCtx)
	// This instance says it is there every ten seconds, and leaves the registry as
	// it stops, so that its rooms are taken over at once.
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		s.instances.Run(jobsCtx)
	}()

	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()

	select {
	case err = <-serveErr:
		// The server stopped on its own: a bad certificate, say.
		err = fmt.Errorf("server stopped: %v", err)
	case <-ctx.Done():
		log.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		if e := srv.Shutdown(shutdownCtx); e != nil {
			log.Warn("shutdown: connections cut", "err", e)
		}
		cancel()
	}
	stopJobs()
	<-jobsDone
	<-beating
	log.Info("stopped")
	return err
}

// every runs a sweep at once and then every interval until ctx ends, logging what
// it did (done, with its count) or why it failed (what).
func (s *services) every(ctx context.Context, interval time.Duration, what, done string, sweep func(context.Context) (int, error)) {
	for {
		if n, err := sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn(what, "err", err)
		} else if n > 0 {
			s.log.Info(done, "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// visitSweeps ends the visits that can no longer happen (see visits.Sweep), every
// minute: a resident released at noon has their afternoon visits cancelled and
// the families told within a minute of the roster's change.
func (s *services) visitSweeps(ctx context.Context) {
	s.every(ctx, visits.SweepEvery, "visits: sweep", "visits: visits that can no longer happen ended, their holds released", s.visits.Sweep)
}

// depositSweeps queues the settle jobs of deposits whose requests never learned
// their charges' outcomes (see deposits.SweepUnsettled), every SweepEvery: after
// a crash, from the server's start.
func (s *services) depositSweeps(ctx context.Context) {
	s.every(ctx, s.deposits.SweepEvery(), "deposits: sweep", "deposits: unsettled deposits queued for settling", s.deposits.SweepUnsettled)
}

// depositReports mails each agency's finance office its daily reconciliation of
// deposits, once a day, soon after its midnight.
func (s *services) depositReports(ctx context.Context) {
	s.every(ctx, deposits.ReportEvery, "deposits: daily reports", "deposits: daily reports queued", s.deposits.SendReports)
}

// ledgerReconciliations matches each day's card money in the ledger with the
// payment processor's own records (SECURITY.md 41), once a day, an hour after
// midnight UTC, where the processor keeps records (Stripe; the sandbox keeps
// none); days of the week before that no server recorded are caught up, oldest
// first. The result is kept (ledger_reconciliations), audited, and exported as
// metrics; differences are logged as errors, and so is a run that fails (counted
// in kinlink_ledger_reconciliation_failures_total): a reconciliation that does
// not happen must not pass for one that found nothing.
func (s *services) ledgerReconciliations(ctx context.Context) {
	processor := s.wallets.Processor()
	st, ok := processor.(ledger.Statement)
	if !ok {
		return
	}
	s.every(ctx, ledger.ReconcileEvery, "ledger: reconcile with the payment processor", "", func(ctx context.Context) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		rs, err := s.ledger.ReconcileDue(ctx, st, processor.Name(), time.Now())
		for _, r := range rs {
			s.logReconciliation(r, processor.Name())
		}
		if err != nil && context.Cause(ctx) != context.Canceled {
			s.reconcileFailures.Inc()
			s.log.Error("ledger: the daily reconciliation with the payment processor failed; tried again in 10 minutes", "processor", processor.Name(), "err", err)
		}
		return 0, nil
	})
}

// logReconciliation logs a day's reconciliation: its differences as errors, one
// line each (the first hundred).
func (s *services) logReconciliation(r ledger.Reconciliation, processor string) {
	day := r.From.Format(time.DateOnly)
	n := r.Differences()
	if n == 0 {
		s.log.Info("ledger: reconciled with the payment processor", "day", day, "processor", processor, "summary", r.Summary())
		return
	}
	s.log.Error("ledger: the ledger and the payment processor do not reconcile", "day", day, "processor", processor, "differences", n, "summary", r.Summary())
	for i, line := range r.Lines() {
		if i == 100 {
			s.log.Error("ledger: more reconciliation differences", "day", day, "more", n-i, "see", "kinlink ledger reconcile --day "+day)
			break
		}
		s.log.Error("ledger: reconciliation difference", "day", day, "difference", line)
	}
}

// housekeeping deletes expired attempt counters, clips past their agency's
// retention, and uploads a day old that no VideoGram took, every hour.
func (s *services) housekeeping(ctx context.Context) {
	t := throttle.New(s.db)
	for {
		if err := t.Prune(ctx, 48*time.Hour); err != nil && ctx.Err() == nil {
			s.log.Warn("housekeeping: prune throttles", "err", err)
		}
		if s.videograms != nil {
			if n, err := s.videograms.Expire(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("housekeeping: delete clips past their retention", "err", err)
			} else if n > 0 {
				s.log.Info("housekeeping: clips past their agency's retention deleted", "count", n)
			}
		}
		if n, err := s.visits.ExpireRecordings(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("housekeeping: delete visit recordings past their retention", "err", err)
		} else if n > 0 {
			s.log.Info("housekeeping: visit recordings past their agency's retention deleted", "count", n)
		}
		if n, err := s.uploads.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("housekeeping: sweep uploads", "err", err)
		} else if n > 0 {
			s.log.Info("housekeeping: uploads nobody finished or sent deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// handler builds the whole HTTP surface with its middleware.
func (s *services) handler() (http.Handler, error) {
	// VideoGrams are offered where this server can convert clips (ffmpeg found).
	offers, deps := facility.Offered(), web.Deps{}
	if s.videograms != nil {
		offers = append(offers, facility.Offer{Offering: facility.VideoGrams})
		deps.VideoGrams, deps.Uploads, deps.UploadLocks = s.videograms, s.uploads, s.uploadLocks
	}
	var bookings *visits.Service // video visits are booked where the setting turns them on
	if s.cfg.VideoVisits {
		offers = append(offers, facility.Offer{Offering: facility.Visits})
		bookings = s.visits
	}
	deps.Visits, deps.Instances = bookings, s.instances
	deps.Catalog, deps.Log, deps.Identity, deps.Facility, deps.Contacts, deps.Wallets, deps.Messages = s.cat, s.log, s.id, s.fac, s.contacts, s.wallets, s.messages
	deps.Deposits = s.deposits
	deps.Offers, deps.BaseURL, deps.SecureCookies = offers, s.cfg.BaseURL, s.cfg.HTTPS()
	site, err := web.New(deps)
	if err != nil {
		return nil, err
	}
	mobile, err := api.New(api.Deps{Catalog: s.cat, Log: s.log, Identity: s.id, Facility: s.fac, Contacts: s.contacts, Wallets: s.wallets, Messages: s.messages,
		Uploads: s.uploads, UploadLocks: s.uploadLocks, VideoGrams: s.videograms, Visits: bookings, Instances: s.instances, BaseURL: s.cfg.BaseURL,
		Deposits: s.deposits, Webhooks: s.webhooks()})
	if err != nil {
		return nil, err
	}
	// Errors raised by middleware render as JSON under /api/ and as pages elsewhere:
	// page, when given, is the site's own page for that refusal, else the one for
	// its status.
	errorFor := func(page func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request, int) {
		return func(w http.ResponseWriter, r *http.Request, status int) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/api/"):
				mobile.StatusError(w, r, status)
			case page != nil:
				page(w, r)
			default:
				site.Error(w, r, status)
			}
		}
	}
	renderError := errorFor(nil)
	crossSite := errorFor(site.CrossSiteRefused)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), jobsCollector{s.db}, reconciliationCollector{s.ledger}, s.reconcileFailures)
	for name, pool := range s.db.Pools() {
		reg.MustRegister(collectors.NewDBStatsCollector(pool, name))
	}
	metrics := httpx.NewMetrics(reg)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	site.Routes(mux)
	mobile.Routes(mux)

	return httpx.Chain(mux,
		httpx.WithRequestID(),
		httpx.WithClientIP(s.cfg.TrustedProxies),
		httpx.AccessLog(s.log, metrics),
		httpx.SecurityHeaders(s.cfg.HTTPS(), httpx.CSP{Stripe: s.cfg.PaymentProcessor == "stripe"}),
		httpx.Recover(s.log, renderError),
		httpx.CrossOrigin(func(w http.ResponseWriter, r *http.Request) { crossSite(w, r, http.StatusForbidden) }),
		httpx.LimitBody(maxBody, func(r *http.Request) int64 { return max(site.BodyLimit(r), mobile.BodyLimit(r)) }, renderError),
		httpx.CleanInput(errorFor(site.BadCharacters)),
	), nil
}

// tell says something to whoever started the server, on stdout: as it reads, or with
// --log-format json as one JSON line like every other line the server prints, with
// the values a program would look for as fields.
func tell(cfg config.Config, stdout io.Writer, text string, fields ...any) {
	if cfg.LogFormat == "json" {
		slog.New(slog.NewJSONHandler(stdout, nil)).Info(text, fields...) // whatever the log level: it is no log
		return
	}
	fmt.Fprintln(stdout, text)
}

// readyz answers 200 when the database answers and its schema is the one this
// binary expects, so a load balancer sends no traffic to an instance that cannot serve.
func (s *services) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.db.Ping(ctx); err != nil {
		s.log.Warn("readyz: database unreachable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "database unreachable")
		return
	}
	cur, latest, err := s.db.SchemaVersion(ctx)
	if err != nil || cur != latest {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "database schema at version %d, want %d\n", cur, latest)
		return
	}
	fmt.Fprintln(w, "ready")
}

// jobsCollector exports the number of jobs in each state at scrape time.
type jobsCollector struct{ db *database.DB }

var jobsDesc = prometheus.NewDesc("kinlink_jobs", "Background jobs by state.", []string{"state"}, nil)

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := jobs.Counts(ctx, c.db)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), string(state))
	}
}

// reconciliationCollector exports the latest daily reconciliation with the payment
// processor at scrape time, read from the database: every server reports the
// same, whichever ran it.
type reconciliationCollector struct{ ledger *ledger.Ledger }

var (
	reconcileDifferencesDesc = prometheus.NewDesc("kinlink_ledger_reconciliation_differences",
		"Differences between the ledger's card money and the payment processor's records found by the latest daily reconciliation.", nil, nil)
	reconcileDayDesc = prometheus.NewDesc("kinlink_ledger_reconciliation_day_timestamp_seconds",
		"Start of the UTC day the latest daily reconciliation with the payment processor covered.", nil, nil)
)

func (c reconciliationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reconcileDifferencesDesc
	ch <- reconcileDayDesc
}

func (c reconciliationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	last, ok, err := c.ledger.LastReconciliation(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(reconcileDifferencesDesc, err)
		return
	}
	if !ok {
		return // none yet (or a processor that keeps no records)
	}
	day, err := time.Parse(time.DateOnly, last.Day)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(reconcileDayDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(reconcileDifferencesDesc, prometheus.GaugeValue, float64(last.Differences))
	ch <- prometheus.MustNewConstMetric(reconcileDayDesc, prometheus.GaugeValue, float64(day.Unix()))
}
