// Command visits measures the SFU of video visits (internal/visits/rtc) under load,
// on loopback, against a bare Pion forwarder measured in the same run (see
// bench/README.md):
//
//   - Kinlink: N concurrent 1:1 visits through rtc.SFU and Room.Join, each with
//     synthetic VP8 at 1.5 Mbit/s and Opus both ways, a silent watcher and a
//     recorder, N raised until loss passes 1% or the cores are full;
//   - the limit: a minimal Pion forwarder (no Kinlink code), one publisher to one
//     receiver, carrying the same packets per second as Kinlink's largest N.
//
// Each server runs in a child process (this program with -serve), so that its CPU
// time is read apart from the load generators', which run in this process on the
// same cores. Every figure is the median of several windows.
//
//	go run ./bench/visits [-window 3s] [-windows 3] [-steps 1,2,4,…]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	lossLimit     = 0.01
	perCoreAim    = 40_000
	ratioAim      = 0.8
	visitsAim     = 25
	warmUp        = 2 * time.Second
	grace         = 500 * time.Millisecond // for the window's last packets to arrive
	fullCoresFrac = 0.95                   // server and clients together at this share of the cores: full
	busyOthers    = 0.3                    // cores other processes used for a lossy point to be measured again
)

func main() {
	serveMode := flag.String("serve", "", "internal: run a server side (kinlink or bare) and print its address")
	window := flag.Duration("window", 3*time.Second, "length of one measured window")
	windows := flag.Int("windows", 3, "measured windows per point; medians are quoted")
	stepsFlag := flag.String("steps", "1,2,4,8,12,16,20,25,30,35,40,45,50,60", "numbers of concurrent visits, in order")
	budget := flag.Duration("budget", 150*time.Second, "stop raising N once Kinlink's ramp has taken this long")
	barePairs := flag.Int("bare-pairs", 0, "pairs of the bare forwarder (default: as many streams as Kinlink's largest N, 4 per visit)")
	cpuprofile := flag.String("cpuprofile", "", "write the Kinlink server's CPU profile (its whole run) to this file")
	flag.Parse()
	if *serveMode != "" {
		if err := serve(*serveMode, *cpuprofile); err != nil {
			fmt.Fprintln(os.Stderr, "visits bench server:", err)
			os.Exit(1)
		}
		return
	}
	var steps []int
	for s := range strings.SplitSeq(*stepsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "visits bench: bad -steps")
			os.Exit(2)
		}
		steps = append(steps, n)
	}
	if err := run(steps, *window, *windows, *budget, *barePairs, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "visits bench:", err)
		os.Exit(1)
	}
}

// point is one measured window (or the medians of several).
type point struct {
	n           int     // visits (Kinlink) or pairs (bare)
	fwd         float64 // packets a second delivered to receivers
	in          float64 // packets a second the publishers sent the server
	loss        float64
	offered     float64 // packets sent / packets due (the generators keeping up)
	server      float64 // the server's cores (CPU seconds per second)
	clients     float64 // this process's cores: the load generators
	machine     float64 // every process's cores, from /proc/stat
	p50, p99    time.Duration
	recDrops    int64
	srvDrops    float64 // datagrams a second dropped by full receive buffers: the server's sockets
	cliDrops    float64 // and the clients'
	heap, rssKB float64 // per visit, at the end of the point
}

func (p point) perCore() float64 {
	if p.server == 0 {
		return 0
	}
	return p.fwd / p.server
}

// throughPerCore counts packets in and out: a Kinlink visit reads each packet
// once for two receivers, a bare pair once for one.
func (p point) throughPerCore() float64 {
	if p.server == 0 {
		return 0
	}
	return (p.in + p.fwd) / p.server
}

// line is a point's figures.
func (p point) line() string {
	return fmt.Sprintf("forwarded %6.0f packets/s, loss %5.2f%% (socket drops/s: server %.0f, clients %.0f); CPU: server %.2f cores → %6.0f packets/s per core, clients %.2f, other processes %.2f; offered %.0f%%; latency p50 %v p99 %v",
		p.fwd, 100*p.loss, p.srvDrops, p.cliDrops, p.server, p.perCore(), p.clients, max(0, p.machine-p.server-p.clients), 100*p.offered, p.p50, p.p99)
}

func run(steps []int, window time.Duration, windows int, budget time.Duration, pairs int, profile string) error {
	cores := runtime.NumCPU()
	fmt.Printf("visits bench: %d cores (%s), load average %s at start; %d windows of %v per point\n",
		cores, cpuModel(), loadavg(), windows, window)
	fmt.Println("recorder: rtc.Recorder, each visit's four files (VP8 in IVF, Opus in Ogg) written to a temporary folder")

	// Kinlink, raising N.
	srv, err := startChild("kinlink", profile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := newLoad(ctx, srv.addr)
	if err != nil {
		return err
	}
	base, err := srv.stats(true)
	if err != nil {
		return err
	}
	fmt.Printf("kinlink server idle: heap %.1f MB, RSS %.1f MB\n", float64(base.Heap)/1e6, float64(base.RSS)/1e6)
	fmt.Println("Kinlink: N visits (family and resident publish, a watcher, a recorder), medians of the windows:")
	var points []point
	stop := ""
	start := time.Now()
	visits := 0
	for _, n := range steps {
		if time.Since(start) > budget {
			stop = fmt.Sprintf("time budget (%v) used", budget)
			break
		}
		if err := addVisits(l, visits, n); err != nil {
			stop = "setting up visits failed: " + err.Error()
			break
		}
		visits = n
		time.Sleep(warmUp)
		p := measure(l, srv, n, window, windows, 2, float64(2*n*packetsPerSide))
		// Other processes share these cores. A point lost while they took a
		// good part of them is measured again (once, after a pause),
		// and every attempt printed.
		for retry := 0; p.loss >= lossLimit && p.machine-p.server-p.clients > busyOthers && retry < 1; retry++ {
			fmt.Printf("  N=%2d: %s (other processes busy: measured again)\n", n, p.line())
			time.Sleep(3 * time.Second)
			p = measure(l, srv, n, window, windows, 2, float64(2*n*packetsPerSide))
		}
		if s, err := srv.stats(true); err == nil {
			p.heap = float64(int64(s.Heap)-int64(base.Heap)) / float64(n)
			p.rssKB = float64(s.RSS-base.RSS) / 1024 / float64(n)
		}
		points = append(points, p)
		fmt.Printf("  N=%2d: %s; memory per visit heap %.0f KB, RSS %.0f KB; recorder drops %d\n", n, p.line(), p.heap/1024, p.rssKB, p.recDrops)
		if p.loss >= lossLimit {
			stop = fmt.Sprintf("loss %.2f%% at N=%d", 100*p.loss, n)
			break
		}
		if p.server+p.clients >= fullCoresFrac*float64(cores) {
			stop = fmt.Sprintf("cores full at N=%d (server and clients %.2f of %d)", n, p.server+p.clients, cores)
			break
		}
	}
	if stop == "" {
		stop = "the last step"
	}
	cancel()
	l.close()
	srv.stop()

	var best *point
	for i := range points {
		if points[i].loss < lossLimit {
			best = &points[i]
		}
	}
	if best == nil {
		return fmt.Errorf("no N had under 1%% loss (stopped: %s)", stop)
	}

	// The bare forwarder at the same packets per second: each Kinlink visit
	// delivers 4 streams of a side's media (each side's to the other and the
	// watcher), a bare pair one.
	if pairs == 0 {
		pairs = 4 * best.n
	}
	bsrv, err := startChild("bare", "")
	if err != nil {
		return err
	}
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	bl, err := newLoad(bctx, bsrv.addr)
	if err != nil {
		return err
	}
	if got, err := addPairs(bl, pairs); err != nil {
		if got == 0 {
			return err
		}
		fmt.Printf("bare forwarder: %d of %d pairs connected (%v); measuring those\n", got, pairs, err)
		pairs = got
	}
	time.Sleep(warmUp)
	bp := measure(bl, bsrv, pairs, window, windows, 1, float64(pairs*packetsPerSide))
	for retry := 0; bp.loss >= lossLimit && bp.machine-bp.server-bp.clients > busyOthers && retry < 1; retry++ {
		fmt.Printf("bare Pion forwarder, %d pairs: %s (other processes busy: measured again)\n", pairs, bp.line())
		time.Sleep(3 * time.Second)
		bp = measure(bl, bsrv, pairs, window, windows, 1, float64(pairs*packetsPerSide))
	}
	bcancel()
	bl.close()
	bsrv.stop()
	fmt.Printf("bare Pion forwarder, %d pairs: %s\n", pairs, bp.line())

	fmt.Println()
	fmt.Printf("machine: %d cores, load average %s at the end\n", cores, loadavg())
	fmt.Printf("bare Pion forwarder (the limit): %.0f packets/s per core (%d pairs, one publisher → one receiver, %.0f packets/s, loss %.2f%%)\n",
		bp.perCore(), pairs, bp.fwd, 100*bp.loss)
	fmt.Printf("Kinlink: largest N with under 1%% loss: %d visits (aim ≥ %d on %d cores); stopped: %s\n", best.n, visitsAim, cores, stop)
	fmt.Printf("  forwarded %.0f packets/s with %.2f cores of server CPU: %.0f packets/s per core (aim ≥ %d)\n", best.fwd, best.server, best.perCore(), perCoreAim)
	fmt.Printf("  ratio to the bare forwarder: %.2f (aim ≥ %.1f)\n", best.perCore()/bp.perCore(), ratioAim)
	fmt.Printf("  counting packets in and out (Kinlink reads each packet once for two receivers, the bare forwarder once for one): %.0f against %.0f per core, ratio %.2f\n",
		best.throughPerCore(), bp.throughPerCore(), best.throughPerCore()/bp.throughPerCore())
	added := fmt.Sprintf("added by Kinlink p99 %v", best.p99-bp.p99)
	if best.p99 <= bp.p99 {
		added = "no added latency measurable (the bare forwarder's was as high or higher)"
	}
	fmt.Printf("  latency sender to receiver through the server: p99 %v (p50 %v); bare forwarder at the same rate p99 %v (p50 %v): %s\n",
		best.p99, best.p50, bp.p99, bp.p50, added)
	fmt.Printf("  server memory per visit: heap %.0f KB, RSS %.0f KB\n", best.heap/1024, best.rssKB)
	fmt.Println("CPU per core: packets delivered to receivers per second, divided by the server process's CPU time (user + system, getrusage in the child) per second of the same window; the load generators run in this process on the same cores and are not counted")
	return nil
}

// addVisits brings the visits from have to want: in each a family and a resident
// who publish and a watcher, joined a few visits at a time, then publishing.
func addVisits(l *load, have, want int) error {
	var pubs []*client
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for v := have; v < want; v++ {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("visit-%d", v)
			for _, role := range []string{"family", "resident", "watcher"} {
				c, err := l.join(id, role, role != "watcher")
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil && role != "watcher" {
					pubs = append(pubs, c)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range pubs {
		go c.publish()
	}
	return firstErr
}

// addPairs connects pairs of the bare forwarder, a publisher and a receiver each,
// and returns how many are connected.
func addPairs(l *load, pairs int) (int, error) {
	var pubs []*client
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("pair-%d", i)
			sub, err := l.join(id, "sub", false)
			if err == nil {
				var pub *client
				pub, err = l.join(id, "pub", true)
				if err == nil {
					mu.Lock()
					pubs = append(pubs, pub)
					mu.Unlock()
				}
			}
			_ = sub
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, c := range pubs {
		go c.publish()
	}
	return len(pubs), firstErr
}

// measure runs windows and returns their medians; each packet sent should reach
// receivers receivers, and due packets are due a second in all.
func measure(l *load, srv *child, n int, window time.Duration, windows, receivers int, due float64) point {
	var ps []point
	for range windows {
		l.winStart.Store(1<<63 - 1)
		l.sent.Store(0)
		l.received.Store(0)
		l.latency.reset()
		s0, _ := srv.stats(false)
		c0, m0, d0 := selfCPU(), machineCPU(), udpDrops()
		t0 := time.Now()
		l.winEnd.Store(t0.Add(window).UnixNano())
		l.winStart.Store(t0.UnixNano())
		time.Sleep(window)
		s1, _ := srv.stats(false)
		c1, m1, d1 := selfCPU(), machineCPU(), udpDrops()
		elapsed := time.Since(t0).Seconds()
		time.Sleep(grace)
		sent, got := float64(l.sent.Load()), float64(l.received.Load())
		p := point{n: n, fwd: got / window.Seconds(), in: sent / window.Seconds(), offered: sent / (due * window.Seconds()),
			server: (s1.CPU - s0.CPU).Seconds() / elapsed, clients: (c1 - c0).Seconds() / elapsed,
			machine: m1.busyCores(m0), p50: l.latency.quantile(0.5), p99: l.latency.quantile(0.99), recDrops: s1.Dropped,
			srvDrops: float64(s1.UDPDrops-s0.UDPDrops) / elapsed, cliDrops: float64(d1-d0) / elapsed}
		if sent > 0 {
			p.loss = max(0, 1-got/(sent*float64(receivers)))
		}
		ps = append(ps, p)
	}
	med := func(f func(point) float64) float64 {
		xs := make([]float64, len(ps))
		for i, p := range ps {
			xs[i] = f(p)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	return point{n: n,
		fwd:      med(func(p point) float64 { return p.fwd }),
		in:       med(func(p point) float64 { return p.in }),
		loss:     med(func(p point) float64 { return p.loss }),
		offered:  med(func(p point) float64 { return p.offered }),
		server:   med(func(p point) float64 { return p.server }),
		clients:  med(func(p point) float64 { return p.clients }),
		machine:  med(func(p point) float64 { return p.machine }),
		p50:      time.Duration(med(func(p point) float64 { return float64(p.p50) })),
		p99:      time.Duration(med(func(p point) float64 { return float64(p.p99) })),
		recDrops: ps[len(ps)-1].recDrops,
		srvDrops: med(func(p point) float64 { return p.srvDrops }),
		cliDrops: med(func(p point) float64 { return p.cliDrops }),
	}
}

// child is a server side in a process of its own.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func startChild(mode, profile string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", mode, "-cpuprofile", profile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s server: %w", mode, err)
	}
	return &child{cmd: cmd, stdin: stdin, addr: strings.TrimSpace(line)}, nil
}

func (c *child) stats(gc bool) (stats, error) {
	url := "http://" + c.addr + "/stats"
	if gc {
		url += "?gc=1"
	}
	var s stats
	resp, err := http.Get(url)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// stop closes the child's stdin, on which it exits, and waits for it.
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimes is the first line of /proc/stat: all cores' ticks, and the idle ones.
type cpuTimes struct{ total, idle float64 }

func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var t cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		t.total += v
		if i == 3 || i == 4 { // idle, iowait
			t.idle += v
		}
	}
	return t
}

// busyCores is how many cores every process on the machine kept busy since then.
func (t cpuTimes) busyCores(then cpuTimes) float64 {
	total := t.total - then.total
	if total <= 0 {
		return 0
	}
	return (1 - (t.idle-then.idle)/total) * float64(runtime.NumCPU())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "?"
}
