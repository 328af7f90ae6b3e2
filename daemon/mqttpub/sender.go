package mqttpub

import (
	"time"
)

// retryDiskEvery is how often the sender tries again to write alarms and
// results that the disk refused, and to read stored ones it could not read.
const retryDiskEvery = 5 * time.Second

// runSender is the one goroutine that hands messages to paho: it takes
// them from the outbox in order while connected (take decides what may go)
// and is woken by new messages, acknowledgements and connects. Publish
// never waits for it, and it never waits for the broker except inside
// paho's Publish, which WriteTimeout bounds.
func (p *Publisher) runSender() {
	defer close(p.senderDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRetry := time.Now()
	for {
		p.sendReady()
		select {
		case <-p.box.wake:
		case <-p.stopSender:
			return
		case now := <-tick.C:
			p.box.sweep(now, false)
			if now.Sub(lastRetry) >= retryDiskEvery {
				lastRetry = now
				p.box.retryDisk()
				p.box.retryUnread()
			}
			p.checkClashSettled()
		}
	}
}

// sendReady hands over everything that may go now.
func (p *Publisher) sendReady() {
	for {
		select {
		case <-p.stopSender:
			return
		default:
		}
		if !p.client.IsConnectionOpen() {
			return
		}
		e, aside := p.box.take()
		for _, a := range aside {
			p.log.Warn("mqtt message larger than the broker accepts set aside (not sent)",
				"topic", a.topic, "class", a.class, "bytes", a.size, "broker_limit", p.box.packetLimit())
		}
		if e == nil {
			return
		}
		// paho stores a QoS 1/2 message through the outbox's Put before
		// it sends it, which gives the entry its packet id; the returned
		// token is not needed: acknowledgements arrive through Del.
		p.client.Publish(e.topic, e.sendQoS, e.retain, e.payload)
		p.box.handed(e)
	}
}
