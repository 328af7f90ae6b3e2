package mqttpub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// The broker keeps a persistent session's subscriptions until the client
// unsubscribes: after a configuration change (another topic prefix, a
// removed trigger or group) it would go on sending this client id the
// messages of the filters it no longer uses, for ever. So every filter
// subscribed is recorded in StoreDir, by client id and broker, and on
// connect those recorded and no longer subscribed are unsubscribed.

// SubscriptionsFile is the record of subscribed filters in StoreDir.
const SubscriptionsFile = "subscriptions.json"

// subsRecord is the SubscriptionsFile: by session key (sessionKey), the
// filters that session holds on the broker.
type subsRecord struct {
	Format   int                 `json:"format"`
	Sessions map[string][]string `json:"sessions"`
}

// maxSubsFile bounds the record read back (a few filters per session).
const maxSubsFile = 1 << 20

// sessionKey names a persistent session: a client id on a broker.
func sessionKey(clientID, broker string) string { return clientID + " " + broker }

func (p *Publisher) subsPath() string { return filepath.Join(p.opts.StoreDir, SubscriptionsFile) }

// readSubs reads the record; a missing file is an empty one.
func (p *Publisher) readSubs() (subsRecord, error) {
	r := subsRecord{Format: 1, Sessions: map[string][]string{}}
	b, err := os.ReadFile(p.subsPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, nil
	case err != nil:
		return r, err
	case len(b) > maxSubsFile:
		return r, fmt.Errorf("%d bytes, more than %d", len(b), maxSubsFile)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return subsRecord{Format: 1, Sessions: map[string][]string{}}, err
	}
	if r.Sessions == nil {
		r.Sessions = map[string][]string{}
	}
	return r, nil
}

// forgetStale unsubscribes, on the connection just made to broker, the
// filters this client id subscribed there before and no longer does, and
// records what the session holds now. A filter whose UNSUBSCRIBE fails
// stays recorded, to be tried on the next connect. Without a StoreDir
// nothing is recorded. Runs on the connect goroutine, after the current
// filters are subscribed; subMu keeps a Subscribe from racing it.
func (p *Publisher) forgetStale(c mqtt.Client, broker string) {
	if p.opts.StoreDir == "" || broker == "" {
		return
	}
	p.subMu.Lock()
	defer p.subMu.Unlock()
	rec, err := p.readSubs()
	if err != nil {
		p.log.Warn("mqtt subscription record unreadable; starting a new one", "file", p.subsPath(), "error", err)
	}
	p.mu.Lock()
	now := make([]string, 0, len(p.subs))
	for f := range p.subs {
		now = append(now, f)
	}
	p.mu.Unlock()
	key := sessionKey(p.opts.ClientID, broker)
	keep := slices.Clone(now)
	for _, f := range rec.Sessions[key] {
		if slices.Contains(now, f) {
			continue
		}
		tok := c.Unsubscribe(f)
		if !tok.WaitTimeout(p.opts.WriteTimeout) || tok.Error() != nil {
			p.log.Warn("mqtt: a filter of an earlier configuration could not be unsubscribed; tried again on the next connect", "topic", f, "error", tok.Error())
			keep = append(keep, f)
			continue
		}
		p.log.Info("mqtt: unsubscribed a filter of an earlier configuration", "topic", f, "broker", broker)
	}
	slices.Sort(keep)
	if slices.Equal(keep, rec.Sessions[key]) {
		return
	}
	rec.Sessions[key] = keep
	b, err := json.Marshal(rec)
	if err == nil {
		err = atomicfile.WriteBytes(p.subsPath(), 0o600, b)
	}
	if err != nil {
		p.log.Warn("mqtt subscription record not written; a later configuration may leave this one's filters subscribed", "file", p.subsPath(), "error", err)
	}
}
