package listener

import (
	"context"
	"sync"
)

// DrainInbound stops taking new inbound connections (listeners whose
// traffic_direction is INBOUND, Istio's virtualInbound) and asks the
// in-flight ones to finish: HTTP responses carry Connection: close and idle
// connections are closed. Outbound listeners go on serving, so an app
// shutting down can still call out; Drain stops them later. This is
// Envoy's drain_listeners?inboundonly as Istio's agent uses it on SIGTERM.
func (m *Manager) DrainInbound(ctx context.Context) {
	m.mu.Lock()
	m.inboundDrained = true
	var rns []*running
	for _, rn := range m.running {
		if rn.cur.Load().Direction == "inbound" {
			rns = append(rns, rn)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, rn := range rns {
		if rn.ln != nil {
			rn.ln.Close()
		}
		for _, c := range rn.cur.Load().allChains() {
			if c.srv == nil {
				continue
			}
			c.hcm.draining.Store(true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.conns.Close()
				c.lean.closeIdle()
				c.srv.Shutdown(ctx)
				c.lean.wait(ctx)
			}()
		}
	}
	wg.Wait()
}

// ActiveConnections is the number of downstream connections open on every
// listener (Envoy's downstream_cx_active summed): what
// EXIT_ON_ZERO_ACTIVE_CONNECTIONS waits to see reach zero.
func (m *Manager) ActiveConnections() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, rn := range m.running {
		n += rn.cur.Load().Stats.CxActive.Load()
	}
	return n
}
