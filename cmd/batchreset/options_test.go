package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/runner"
)

// TestRunSettings maps argv and the environment to run's settings, without
// running anything: every nonsensical value is a usage error naming the
// flag, never silently replaced.
func TestRunSettings(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2026, 12, 1, 6, 46, 0, 0, loc)
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, s runSettings)
		wantErr string // substring of the usage error; "" for none
	}{
		{name: "Defaults", args: []string{"--jobs", "j.csv"}, check: func(t *testing.T, s runSettings) {
			rc := s.runner
			if rc.Rate != runner.DefaultRate || rc.DescribeRate != runner.DefaultDescribeRate || rc.Workers != runner.DefaultWorkers ||
				rc.PollInterval != runner.DefaultPollInterval || rc.ResetTimeout != runner.DefaultResetTimeout ||
				rc.SettleTime != runner.DefaultSettleTime || rc.Unreachable != runner.DefaultUnreachable || rc.RequestTimeout != 30*time.Second {
				t.Errorf("runner config = %+v, want the runner's defaults", rc)
			}
			if s.rollout.maxFailures != "10%" || !s.rollout.preflight || !s.rollout.windowEnd.IsZero() {
				t.Errorf("rollout = %+v, want a 10%% budget, preflight, no window", s.rollout)
			}
			ro, err := s.rollout.resolve(200)
			if err != nil || ro.MaxFailures != 20 {
				t.Errorf("resolve(200) = %+v, %v; want a budget of 20", ro, err)
			}
			if s.runner.LeaseRenewInterval != 0 {
				t.Errorf("CSV mode renews leases every %s, want never", s.runner.LeaseRenewInterval)
			}
		}},
		{name: "NoBudget", args: []string{"--jobs", "j.csv", "--max-failures", "none"}, check: func(t *testing.T, s runSettings) {
			if ro, err := s.rollout.resolve(10); err != nil || ro.MaxFailures != -1 {
				t.Errorf("resolve() = %+v, %v; want no budget", ro, err)
			}
		}},
		{name: "BudgetBad", args: []string{"--jobs", "j.csv", "--max-failures", "lots"}, wantErr: "--max-failures"},
		{name: "BudgetEmpty", args: []string{"--jobs", "j.csv", "--max-failures", ""}, wantErr: "--max-failures"},
		{name: "WorkersZero", args: []string{"--jobs", "j.csv", "--workers", "0"}, wantErr: "--workers must be at least 1"},
		{name: "MaxInFlightNegative", args: []string{"--jobs", "j.csv", "--max-in-flight", "-1"}, wantErr: "--max-in-flight"},
		{name: "CanaryNegative", args: []string{"--jobs", "j.csv", "--canary", "-2"}, wantErr: "--canary"},
		{name: "ResetTimeoutZero", args: []string{"--jobs", "j.csv", "--reset-timeout", "0s"}, wantErr: "--reset-timeout must be positive"},
		{name: "ExpectedDurationZero", args: []string{"--jobs", "j.csv", "--expected-duration", "0s"}, wantErr: "--expected-duration"},
		{name: "PollIntervalNegative", args: []string{"--jobs", "j.csv", "--poll-interval", "-1s"}, wantErr: "--poll-interval"},
		{name: "UnreachableZero", args: []string{"--jobs", "j.csv", "--unreachable-timeout", "0s"}, wantErr: "--unreachable-timeout"},
		{name: "RateZero", args: []string{"--jobs", "j.csv", "--rate", "0"}, wantErr: "--rate"},
		{name: "RateNaN", args: []string{"--jobs", "j.csv", "--describe-rate", "NaN"}, wantErr: "--describe-rate"},
		{name: "SettleBelowTimeout", args: []string{"--jobs", "j.csv", "--settle-time", "20s"}, wantErr: "--settle-time"},
		{name: "RequestTimeoutZero", args: []string{"--jobs", "j.csv", "--request-timeout", "0s"}, wantErr: "--request-timeout"},
		{name: "WavesBad", args: []string{"--jobs", "j.csv", "--waves", "1,x"}, wantErr: "--waves"},
		{name: "WindowEndLaterToday", args: []string{"--jobs", "j.csv", "--window-end", "07:30"}, check: func(t *testing.T, s runSettings) {
			if want := time.Date(2026, 12, 1, 7, 30, 0, 0, loc); !s.rollout.windowEnd.Equal(want) {
				t.Errorf("window end = %v, want %v", s.rollout.windowEnd, want)
			}
		}},
		{name: "WindowEndPastHHMM", args: []string{"--jobs", "j.csv", "--window-end", "06:36"}, wantErr: "--window-end 2026-12-01T06:36:00+01:00 is already past"},
		{name: "WindowEndPastRFC3339", args: []string{"--jobs", "j.csv", "--window-end", "2026-12-01T05:00:00Z"}, wantErr: "already past"},
		{name: "WindowEndRFC3339", args: []string{"--jobs", "j.csv", "--window-end", "2026-12-01T07:00:00Z"}, check: func(t *testing.T, s runSettings) {
			if want := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC); !s.rollout.windowEnd.Equal(want) {
				t.Errorf("window end = %v, want %v", s.rollout.windowEnd, want)
			}
		}},
		{name: "WindowEndGarbage", args: []string{"--jobs", "j.csv", "--window-end", "tonight"}, wantErr: "neither RFC 3339"},
		{name: "NotifyFromEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{notify.EnvURLs: "https://a.example/SECRET\nhttps://b.example/SECRET", notify.EnvSecret: "k"},
			check: func(t *testing.T, s runSettings) {
				// The HMAC-SHA256 of "body" keyed by "k" (openssl dgst -sha256 -hmac k).
				const want = "c6d811ef3aeb02437cd423f1abe13209041864630bdc4e2c04def5c7b0031a23"
				if got := fmt.Sprint(s.notify.Destinations); got != "[https://a.example/… https://b.example/…]" || s.notify.Signer == nil {
					t.Errorf("notify = %v, signer %v; want the two URLs of the environment, and its key", got, s.notify.Signer)
				} else if sig := s.notify.Signer.Sign([]byte("body")); sig != want {
					t.Errorf("Sign(body) = %s, want %s", sig, want)
				}
			}},
		{name: "NotifyURLMalformed", args: []string{"--jobs", "j.csv", "--notify", "https://a.example/SECRET https://b.example/SECRET"}, wantErr: "--notify #1: https://a.example/… looks like several URLs"},
		{name: "WindowAndWindowEnd", args: []string{"--jobs", "j.csv", "--window", "1h", "--window-end", "07:30"}, wantErr: "not both"},
		{name: "Window", args: []string{"--jobs", "j.csv", "--window", "1h"}, check: func(t *testing.T, s runSettings) {
			if want := now.Add(time.Hour); !s.rollout.windowEnd.Equal(want) {
				t.Errorf("window end = %v, want %v", s.rollout.windowEnd, want)
			}
		}},
		{name: "NoSource", args: nil, wantErr: "give --jobs"},
		{name: "BothSources", args: []string{"--jobs", "j.csv", "--database-url", "postgres://x"}, wantErr: "not both"},
		{name: "DatabaseFromEnv", args: nil, env: map[string]string{"DATABASE_URL": "postgres://db/ops"}, check: func(t *testing.T, s runSettings) {
			if s.src.databaseURL != "postgres://db/ops" || s.src.jobsPath != "" {
				t.Errorf("source = %+v, want Postgres mode from DATABASE_URL", s.src)
			}
			if s.runner.LeaseRenewInterval != 20*time.Second {
				t.Errorf("lease renewal every %s, want a third of the 60s lease", s.runner.LeaseRenewInterval)
			}
		}},
		{name: "JobsBeatsDatabaseEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{"DATABASE_URL": "postgres://db/ops"}, check: func(t *testing.T, s runSettings) {
			if s.src.databaseURL != "" {
				t.Errorf("source = %+v, want CSV mode", s.src)
			}
		}},
		{name: "RegionFromEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{"TENCENTCLOUD_REGION": "ap-beijing"}, check: func(t *testing.T, s runSettings) {
			if s.src.region != "ap-beijing" {
				t.Errorf("region = %q, want ap-beijing", s.src.region)
			}
		}},
		{name: "RoleFromEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{"TENCENTCLOUD_ROLE_ARN": "qcs::cam::uin/1:roleName/r"}, check: func(t *testing.T, s runSettings) {
			if s.api.roleARN != "qcs::cam::uin/1:roleName/r" {
				t.Errorf("role = %q, want the one from the environment", s.api.roleARN)
			}
		}},
		{name: "EmulateWithEndpoint", args: []string{"--jobs", "j.csv", "--emulate", "--endpoint", "http://127.0.0.1:1"}, wantErr: "not both"},
		{name: "EndpointNormalised", args: []string{"--jobs", "j.csv", "--endpoint", "HTTP://127.0.0.1:8080/"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "http://127.0.0.1:8080" {
				t.Errorf("endpoint = %q, want http://127.0.0.1:8080", s.api.endpoint)
			}
		}},
		{name: "EndpointPath", args: []string{"--jobs", "j.csv", "--endpoint", "http://127.0.0.1:8080/v2"}, wantErr: "--endpoint"},
		{name: "EndpointUser", args: []string{"--jobs", "j.csv", "--endpoint", "https://op:pw@lighthouse.tencentcloudapi.com"}, wantErr: "--endpoint"},
		{name: "WindowEndOffset", args: []string{"--jobs", "j.csv", "--window-end", "07:00Z"}, check: func(t *testing.T, s runSettings) {
			if want := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC); !s.rollout.windowEnd.Equal(want) {
				t.Errorf("window end = %v, want %v", s.rollout.windowEnd, want)
			}
		}},
		// It is 13:46 on Dec 1 in Shanghai: 23:00 there is 15:00 UTC.
		{name: "WindowEndZoneName", args: []string{"--jobs", "j.csv", "--window-end", "23:00 Asia/Shanghai"}, check: func(t *testing.T, s runSettings) {
			if want := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC); !s.rollout.windowEnd.Equal(want) {
				t.Errorf("window end = %v, want %v", s.rollout.windowEnd, want)
			}
		}},
		{name: "WindowEndZonePast", args: []string{"--jobs", "j.csv", "--window-end", "05:00 Asia/Shanghai"}, wantErr: "--window-end 2026-12-01T05:00:00+08:00 is already past"},
		{name: "WindowEndZoneUnknown", args: []string{"--jobs", "j.csv", "--window-end", "07:00 Mars/Olympus"}, wantErr: "unknown time zone"},
		{name: "EndpointFromEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{"BATCHRESET_ENDPOINT": "HTTPS://lighthouse.ap-singapore.tencentcloudapi.com/"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "https://lighthouse.ap-singapore.tencentcloudapi.com" {
				t.Errorf("endpoint = %q, want the normalised one from BATCHRESET_ENDPOINT", s.api.endpoint)
			}
		}},
		{name: "EndpointFlagBeatsEnv", args: []string{"--jobs", "j.csv", "--endpoint", "http://127.0.0.1:8080"}, env: map[string]string{"BATCHRESET_ENDPOINT": "https://lighthouse.ap-singapore.tencentcloudapi.com"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "http://127.0.0.1:8080" {
				t.Errorf("endpoint = %q, want the flag's", s.api.endpoint)
			}
		}},
		{name: "EndpointEnvBad", args: []string{"--jobs", "j.csv"}, env: map[string]string{"BATCHRESET_ENDPOINT": "lighthouse.tencentcloudapi.com"}, wantErr: "BATCHRESET_ENDPOINT"},
		{name: "EndpointDefaultCN", args: []string{"--jobs", "j.csv"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "https://lighthouse.tencentcloudapi.com" {
				t.Errorf("endpoint = %q, want the cn site's", s.api.endpoint)
			}
		}},
		{name: "SiteIntl", args: []string{"--jobs", "j.csv", "--site", "intl"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "https://lighthouse.intl.tencentcloudapi.com" {
				t.Errorf("endpoint = %q, want the intl site's", s.api.endpoint)
			}
		}},
		{name: "SiteIntlFromEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{"BATCHRESET_SITE": "intl"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "https://lighthouse.intl.tencentcloudapi.com" {
				t.Errorf("endpoint = %q, want the intl site's", s.api.endpoint)
			}
		}},
		{name: "SiteTypo", args: []string{"--jobs", "j.csv", "--site", "international"}, wantErr: `--site "international": give cn or intl`},
		{name: "SiteEnvTypo", args: []string{"--jobs", "j.csv"}, env: map[string]string{"BATCHRESET_SITE": "INTL"}, wantErr: "BATCHRESET_SITE"},
		// A regional host is listed by both sites, an emulator by none: the endpoint wins.
		{name: "SiteWithRegionalEndpoint", args: []string{"--jobs", "j.csv", "--site", "intl", "--endpoint", "https://lighthouse.ap-singapore.tencentcloudapi.com"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "https://lighthouse.ap-singapore.tencentcloudapi.com" {
				t.Errorf("endpoint = %q, want the explicit one", s.api.endpoint)
			}
		}},
		{name: "SiteEnvWithEmulatorEndpoint", args: []string{"--jobs", "j.csv", "--endpoint", "http://127.0.0.1:8080"}, env: map[string]string{"BATCHRESET_SITE": "intl"}, check: func(t *testing.T, s runSettings) {
			if s.api.endpoint != "http://127.0.0.1:8080" {
				t.Errorf("endpoint = %q, want the explicit one", s.api.endpoint)
			}
		}},
		{name: "SiteConflictsWithEndpoint", args: []string{"--jobs", "j.csv", "--site", "intl", "--endpoint", "https://lighthouse.tencentcloudapi.com"}, wantErr: "--endpoint https://lighthouse.tencentcloudapi.com is the cn site's, but --site says intl"},
		{name: "SiteEnvConflictsWithEndpointEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{"BATCHRESET_SITE": "cn", "BATCHRESET_ENDPOINT": "https://lighthouse.intl.tencentcloudapi.com"}, wantErr: "BATCHRESET_ENDPOINT https://lighthouse.intl.tencentcloudapi.com is the intl site's, but BATCHRESET_SITE says cn"},
		{name: "EmulateWithSite", args: []string{"--jobs", "j.csv", "--emulate", "--site", "intl"}, wantErr: "not both"},
		{name: "EmulateIgnoresEnv", args: []string{"--jobs", "j.csv", "--emulate"}, env: map[string]string{"BATCHRESET_SITE": "intl", "BATCHRESET_ENDPOINT": "https://lighthouse.intl.tencentcloudapi.com"}, check: func(t *testing.T, s runSettings) {
			if !s.api.emulate || s.api.tencentCloud() {
				t.Errorf("api = %+v, want the emulator", s.api)
			}
		}},
		{name: "StateDirDefault", args: []string{"--jobs", "j.csv"}, env: map[string]string{"TMPDIR": "/var/tmp/x", "HOME": "/home/op"}, check: func(t *testing.T, s runSettings) {
			if s.api.stateDir != hoststate.DefaultDir() {
				t.Errorf("state dir = %q, want %q", s.api.stateDir, hoststate.DefaultDir())
			}
		}},
		{name: "StateDirFromEnv", args: []string{"--jobs", "j.csv"}, env: map[string]string{hoststate.EnvDir: "/srv/batchreset"}, check: func(t *testing.T, s runSettings) {
			if s.api.stateDir != "/srv/batchreset" {
				t.Errorf("state dir = %q, want /srv/batchreset", s.api.stateDir)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o runFlags
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			o.add(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := o.settings(now, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("settings(%q) error = %v, want a usage error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("settings(%q) error = %v", tc.args, err)
			}
			tc.check(t, s)
		})
	}
}

// TestParseTimeZones: an HH:MM with a zone names one instant whatever the
// host's zone, on that zone's date; offsets are fixed, never Local's summer
// time; anything else is an error.
func TestParseTimeZones(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 23:30 UTC on June 30: July 1 in Shanghai, summer time (+02:00) in Berlin.
	instant := time.Date(2026, 6, 30, 23, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"05:00", time.Date(2026, 7, 1, 5, 0, 0, 0, berlin)},
		{"5:00", time.Date(2026, 7, 1, 5, 0, 0, 0, berlin)},
		{"05:00Z", time.Date(2026, 6, 30, 5, 0, 0, 0, time.UTC)},
		{"05:00 UTC", time.Date(2026, 6, 30, 5, 0, 0, 0, time.UTC)},
		{"05:00+08:00", time.Date(2026, 6, 30, 21, 0, 0, 0, time.UTC)}, // +08:00's date is July 1
		{"05:00 Asia/Shanghai", time.Date(2026, 6, 30, 21, 0, 0, 0, time.UTC)},
		{"05:00+01:00", time.Date(2026, 7, 1, 4, 0, 0, 0, time.UTC)}, // not Berlin's +02:00
		{"2026-07-01T05:00:00-05:00", time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime(tc.in, instant.In(berlin))
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "05", "05:0", "05:00 ", "05:00 Local", "05:00+8", "05:00 Nowhere/Land", "25:00", "05:00pm", "tonight"} {
		if got, err := parseTime(in, instant); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", in, got)
		}
	}
}
