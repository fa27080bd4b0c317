package agent

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Istio's termination settings, as its injector hands them to the proxy
// container: terminationDrainDuration (proxy.istio.io/config or
// meshConfig.defaultConfig) as TERMINATION_DRAIN_DURATION_SECONDS, and the
// two proxyMetadata switches.
const (
	TerminationDrainEnv = "TERMINATION_DRAIN_DURATION_SECONDS"
	ExitOnZeroEnv       = "EXIT_ON_ZERO_ACTIVE_CONNECTIONS"
	MinimumDrainEnv     = "MINIMUM_DRAIN_DURATION"
)

// Termination is how the proxy shuts down on SIGTERM.
type Termination struct {
	// Drain is how long outbound traffic is still served after SIGTERM
	// while inbound drains (Istio's terminationDrainDuration, default 5s).
	Drain time.Duration
	// ExitOnZero waits, after Minimum, for the last downstream connection
	// to close instead of for Drain (EXIT_ON_ZERO_ACTIVE_CONNECTIONS).
	ExitOnZero bool
	Minimum    time.Duration // MINIMUM_DRAIN_DURATION, default 5s
}

// terminationFromEnv reads Istio's variables over the defaults; a
// malformed one is an error naming it.
func terminationFromEnv(getenv func(string) string) (Termination, error) {
	t := Termination{Drain: 5 * time.Second, Minimum: 5 * time.Second}
	if v := getenv(TerminationDrainEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return t, fmt.Errorf("environment %s=%q: want whole seconds, 0 or more (from proxy.istio.io/config terminationDrainDuration)", TerminationDrainEnv, v)
		}
		t.Drain = time.Duration(n) * time.Second
	}
	if v := getenv(ExitOnZeroEnv); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return t, fmt.Errorf("environment %s=%q: want true or false", ExitOnZeroEnv, v)
		}
		t.ExitOnZero = b
	}
	if v := getenv(MinimumDrainEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return t, fmt.Errorf("environment %s=%q: want a duration such as 5s", MinimumDrainEnv, v)
		}
		t.Minimum = d
	}
	return t, nil
}

// Terminate is SIGTERM as Istio's agent handles it: readiness fails at
// once and inbound listeners stop taking connections, while outbound goes
// on working for the app, which is shutting down too and may still call
// out (save state, deregister, finish a request); after t.Drain, or with
// t.ExitOnZero once no downstream connection is left (checked every second
// after t.Minimum), everything is drained and closed. ctx bounds it all.
func (p *Proxy) Terminate(ctx context.Context, t Termination) {
	p.draining.Store(true)
	inbound, cancel := context.WithTimeout(ctx, p.opts.DrainTimeout)
	defer cancel()
	go p.Listeners.DrainInbound(inbound)
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		case <-p.quit:
			return false
		}
	}
	if t.ExitOnZero {
		ok := wait(t.Minimum)
		for ok {
			n := p.Listeners.ActiveConnections()
			if n == 0 {
				mainLog.Info("no active connections left: exiting")
				break
			}
			mainLog.Debug("waiting for active connections to close", "active", n)
			ok = wait(time.Second)
		}
	} else {
		wait(t.Drain)
	}
	p.Drain(ctx)
}
