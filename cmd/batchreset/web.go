package main

import (
	"time"

	"github.com/spf13/pflag"
)

// viewFlags are the flags of run and retry for watching a run from
// elsewhere: the live status page and notifications.
type viewFlags struct {
	statusAddr     string
	statusControls bool
	notify         notifyFlags
}

func (o *viewFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.statusAddr, "status-addr", "", "serve a live status page of the run on this address (e.g. 127.0.0.1:8080; a bare :PORT binds to loopback)")
	fs.BoolVar(&o.statusControls, "status-controls", false, "let the status page pause, resume and cancel the run (confirmed POSTs from the page itself only)")
	fs.StringArrayVar(&o.notify.urls, "notify", nil, "post a JSON event to this URL on the run's start, each wave's end, a stop, a pause or cancel, and its end (repeatable)")
	fs.StringVar(&o.notify.secretFile, "notify-secret-file", "", "sign notifications with HMAC-SHA256 of the body, keyed by this file's content (header "+headerSignature+": sha256=HEX)")
	fs.StringVar(&o.notify.format, "notify-format", "json", "notification body: json, or slack (an incoming-webhook message)")
	fs.DurationVar(&o.notify.timeout, "notify-timeout", 10*time.Second, "timeout of one notification attempt, and how long the end of the run waits for undelivered ones")
}

func (o *viewFlags) check() error {
	if o.statusControls && o.statusAddr == "" {
		return usageError("--status-controls needs --status-addr ADDR")
	}
	return o.notify.check()
}
