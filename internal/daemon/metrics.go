package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/metrics"
)

// metricsSource is what the Prometheus collector reads at scrape time.
type metricsSource struct{ d *Daemon }

func (s metricsSource) Stats() api.Stats {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	st, _ := s.d.stats("")
	return st
}

func (s metricsSource) StoreConnected() (connected, ok bool) {
	if s.d.cluster == nil {
		return false, false
	}
	return s.d.cluster.info().State == "connected", true
}

// startMetrics listens on Config.MetricsAddr, in the daemon's own network
// namespace, and serves Prometheus metrics at /metrics.
func (d *Daemon) startMetrics() error {
	if d.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics %s: %w", d.cfg.MetricsAddr, err)
	}
	d.metricsSrv = &http.Server{Handler: metrics.Handler(metricsSource{d}, d.cfg.Version),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := d.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	d.log.Info("serving Prometheus metrics", zap.String("addr", ln.Addr().String()))
	return nil
}

// stopMetrics stops the metrics server. It does not wait for a scrape
// in progress (which takes d.mu), so it may be called with d.mu held.
func (d *Daemon) stopMetrics() {
	if d.metricsSrv != nil {
		d.metricsSrv.Close()
	}
}
