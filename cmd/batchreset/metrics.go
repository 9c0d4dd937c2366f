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
			func() float64 { return float64(st.Submitted.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "batchreset_reset_calls_total", Help: "ResetInstance calls sent."},
			func() float64 { return float64(st.Calls()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "batchreset_throttled_total", Help: "Calls answered RequestLimitExceeded."},
			func() float64 { return float64(st.Throttled()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "batchreset_resets_in_flight", Help: "Resets sent and not yet settled."},
			func() float64 { return float64(st.InFlight.Load()) }),
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

// instrument wraps the API client to time every call.
func (m *metrics) instrument(c *lighthouse.Client) runner.API {
	return instrumentedAPI{failpointAPI{c}, m}
}

type instrumentedAPI struct {
	api runner.API
	m   *metrics
}

func (i instrumentedAPI) record(action string, start time.Time, err error) {
	result := "ok"
	if ae, ok := errors.AsType[*lighthouse.APIError](err); ok {
		result = ae.Code
	} else if err != nil {
		result = "error"
	}
	i.m.latency.WithLabelValues(action, result).Observe(time.Since(start).Seconds())
}

func (i instrumentedAPI) ResetInstanceWith(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	start := time.Now()
	id, err := i.api.ResetInstanceWith(ctx, region, req)
	i.record(lighthouse.ActionResetInstance, start, err)
	return id, err
}

func (i instrumentedAPI) DescribeInstances(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error) {
	start := time.Now()
	out, err := i.api.DescribeInstances(ctx, region, ids)
	i.record(lighthouse.ActionDescribeInstances, start, err)
	return out, err
}

func (i instrumentedAPI) DescribeBlueprints(ctx context.Context, region string, ids []string) ([]lighthouse.Blueprint, error) {
	start := time.Now()
	out, err := i.api.DescribeBlueprints(ctx, region, ids)
	i.record(lighthouse.ActionDescribeBlueprints, start, err)
	return out, err
}

func (i instrumentedAPI) DescribeResetInstanceBlueprints(ctx context.Context, region, instanceID string, blueprintIDs []string) ([]lighthouse.ResetInstanceBlueprint, error) {
	start := time.Now()
	out, err := i.api.DescribeResetInstanceBlueprints(ctx, region, instanceID, blueprintIDs)
	i.record(lighthouse.ActionDescribeResetInstanceBlueprints, start, err)
	return out, err
}

func (i instrumentedAPI) DescribeInstancesPage(ctx context.Context, region string, filters []lighthouse.Filter, offset, limit int) (int, []lighthouse.Instance, error) {
	start := time.Now()
	total, out, err := i.api.DescribeInstancesPage(ctx, region, filters, offset, limit)
	i.record(lighthouse.ActionDescribeInstances, start, err)
	return total, out, err
}

func (i instrumentedAPI) GetResourcesPage(ctx context.Context, filters []lighthouse.TagFilter, token string) ([]lighthouse.TaggedResource, string, error) {
	start := time.Now()
	out, next, err := i.api.GetResourcesPage(ctx, filters, token)
	i.record(lighthouse.ActionGetResources, start, err)
	return out, next, err
}

func (i instrumentedAPI) DescribeRegions(ctx context.Context) ([]lighthouse.Region, error) {
	start := time.Now()
	out, err := i.api.DescribeRegions(ctx)
	i.record(lighthouse.ActionDescribeRegions, start, err)
	return out, err
}

func (i instrumentedAPI) GetCallerIdentity(ctx context.Context) (lighthouse.CallerIdentity, error) {
	start := time.Now()
	out, err := i.api.GetCallerIdentity(ctx)
	i.record(lighthouse.ActionGetCallerIdentity, start, err)
	return out, err
}

func (i instrumentedAPI) DescribeKeyPairs(ctx context.Context, region string, ids []string) ([]lighthouse.KeyPair, error) {
	start := time.Now()
	out, err := i.api.DescribeKeyPairs(ctx, region, ids)
	i.record(lighthouse.ActionDescribeKeyPairs, start, err)
	return out, err
}

func (i instrumentedAPI) DescribeAutomationAgentStatus(ctx context.Context, region string, ids []string) ([]lighthouse.AutomationAgent, error) {
	start := time.Now()
	out, err := i.api.DescribeAutomationAgentStatus(ctx, region, ids)
	i.record(lighthouse.ActionDescribeAutomationAgentStatus, start, err)
	return out, err
}

func (i instrumentedAPI) RunCommand(ctx context.Context, region string, req lighthouse.RunCommandRequest) (string, error) {
	start := time.Now()
	out, err := i.api.RunCommand(ctx, region, req)
	i.record(lighthouse.ActionRunCommand, start, err)
	return out, err
}

func (i instrumentedAPI) DescribeInvocationTasks(ctx context.Context, region, invocationID string) ([]lighthouse.InvocationTask, error) {
	start := time.Now()
	out, err := i.api.DescribeInvocationTasks(ctx, region, invocationID)
	i.record(lighthouse.ActionDescribeInvocationTasks, start, err)
	return out, err
}
