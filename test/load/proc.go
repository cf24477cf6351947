package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server child process: postern, postern gateway, the echo
// backend or a baseline.
type proc struct {
	name     string
	cmd      *exec.Cmd
	url      string // from its "listening on URL" line
	pprofURL string // from postern's "pprof at URL" line, when --pprof was given
	logs     *tailBuffer
	done     chan struct{}
	exitErr  error
	idleRSS  int64 // VmRSS in KiB, sampled once it answered /healthz
}

var (
	listeningRE = regexp.MustCompile(`listening on (http\S+)`)
	pprofRE     = regexp.MustCompile(`pprof at (http://[^/\s]+)/debug/pprof/`)
)

// startProc runs bin with args, waits for its listening line and for
// /healthz to answer 200, then samples its idle RSS.
func startProc(ctx context.Context, name, bin string, args, env []string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, logs: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = p.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	type urls struct{ main, pprof string }
	found := make(chan urls, 1)
	go func() {
		var pp string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(p.logs, "[stdout] %s\n", line)
			if m := pprofRE.FindStringSubmatch(line); m != nil {
				pp = m[1]
				continue
			}
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- urls{m[1], pp}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	select {
	case u := <-found:
		p.url, p.pprofURL = u.main, u.pprof
	case <-p.done:
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", name, p.exitErr, p.logs.String())
	case <-time.After(20 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s did not report its address within 20s:\n%s", name, p.logs.String())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
	if err := p.waitHealthy(ctx); err != nil {
		p.kill()
		return nil, err
	}
	// Let start-up garbage settle before calling the process idle.
	time.Sleep(200 * time.Millisecond)
	st, err := readProcStatus(p.pid())
	if err != nil {
		p.kill()
		return nil, err
	}
	p.idleRSS = st.rssKiB
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) waitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while starting (%v):\n%s", p.name, p.exitErr, p.logs.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: /healthz never answered 200:\n%s", p.name, p.logs.String())
}

// stop sends SIGTERM and waits for the process to finish its in-flight
// requests; a process that does not stop within 20s is killed. It returns
// an error when the process did not exit cleanly.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.exitError()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitError()
	case <-time.After(20 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not stop within 20s of SIGTERM", p.name)
	}
}

func (p *proc) exitError() error {
	if p.exitErr != nil {
		return fmt.Errorf("%s exited with %v:\n%s", p.name, p.exitErr, p.logs.String())
	}
	return nil
}

// kill ends the process with SIGKILL (only this process, by its id).
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// procStatus holds the memory lines of /proc/PID/status.
type procStatus struct {
	rssKiB int64 // VmRSS: resident now
	hwmKiB int64 // VmHWM: the resident high-water mark since start
}

func readProcStatus(pid int) (procStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, fmt.Errorf("read RSS: %w", err)
	}
	defer f.Close()
	var st procStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return procStatus{}, fmt.Errorf("read RSS: %s: %q", key, val)
		}
		if key == "VmRSS" {
			st.rssKiB = n
		} else {
			st.hwmKiB = n
		}
	}
	if err := sc.Err(); err != nil {
		return procStatus{}, fmt.Errorf("read RSS: %w", err)
	}
	if st.rssKiB == 0 {
		return procStatus{}, errors.New("read RSS: no VmRSS line in /proc/PID/status")
	}
	return st, nil
}

// rssSampler records the highest VmRSS of a process, sampled every 50ms.
type rssSampler struct {
	stopc chan struct{}
	done  chan struct{}
	peak  int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := readProcStatus(pid); err == nil && st.rssKiB > s.peak {
				s.peak = st.rssKiB
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends sampling and returns the peak in KiB.
func (s *rssSampler) stop() int64 {
	close(s.stopc)
	<-s.done
	return s.peak
}

// tailBuffer keeps the last max bytes written to it: a child's logs for
// error messages, without growing through a long run.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
