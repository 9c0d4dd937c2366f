package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// metrics are the Prometheus metrics served by --metrics-addr.
type metrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "batchreset_api_call_duration_seconds",
		Help:    "Lighthouse API call latency by action and result (ok or the error code).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"action", "result"})
	m.reg.MustRegister(m.latency)
	return m
}

// observe exports the runner's live counters.
func (m *metrics) observe(st *runner.Stats) {
	outcome := func(s store.Status) func() float64 {
		return func() float64 { return float64(st.Totals()[s]) }
	}
	for _, s := range []store.Status{store.StatusSucceeded, store.StatusFailed, store.StatusUnknown, store.StatusSkipped, store.StatusUnhealthy} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "batchreset_resets_" + string(s) + "_total", Help: "Instances whose reset ended " + string(s) + ".",
		}, outcome(s)))
	}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "batchreset_resets_submitted_total", Help: "Instances for which a reset was sent."},
			func() float64 { return float64(st.Sent()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "batchreset_reset_calls_total", Help: "ResetInstance calls sent."},
			func() float64 { return float64(st.Calls()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "batchreset_throttled_total", Help: "Calls answered RequestLimitExceeded."},
			func() float64 { return float64(st.Throttled()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "batchreset_resets_in_flight", Help: "Resets sent and not yet settled."},
			func() float64 { return float64(st.Resetting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "batchreset_limiter_wait_seconds_total", Help: "Time senders spent waiting for the ResetInstance rate limiter."},
			func() float64 { return st.LimiterWait().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "batchreset_run_paused", Help: "1 while the operator has paused the run."},
			func() float64 {
				if st.Paused() {
					return 1
				}
				return 0
			}),
	)
}

// serve starts the metrics endpoint; the returned func stops it.
func (m *metrics) serve(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// call records one API call, for the runner's observe hook
// (runner.Config.ObserveCall): its action, its duration and its result, the
// API's error code or "ok".
func (m *metrics) call(action string, took time.Duration, err error) {
	result := "ok"
	if ae, ok := errors.AsType[*lighthouse.APIError](err); ok {
		result = ae.Code
	} else if err != nil {
		result = "error"
	}
	m.latency.WithLabelValues(action, result).Observe(took.Seconds())
}
