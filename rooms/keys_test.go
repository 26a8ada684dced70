package rooms

import (
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// worldKeys gives a world's devices KEM keys and keeps the epoch keys the
// fixtures made, so that actions can build rotations, forwards and sealed
// messages (testdata/e2ee_*.txt). Verbs (see doAction):
//
//	NAME device [norot] [extra=N] [missing=N]      announce NAME's device (joined rooms: with a barrier)
//	NAME remove-device DEV [norot]                 remove DEV (e.g. bob.2), with a rotation
//	NAME rotate [extra=N] [missing=N]              a rotation to the member devices (+N, -N)
//	NAME send TEXT... [epoch=LABEL] [noepoch]      a sealed message (default: newest admissible epoch)
//	NAME fwd LABEL to=N                            forward the epoch introduced by LABEL to N's device
//	NAME kick|ban T [norot] [extra=N] [missing=N]  in an encrypted room, with an embedded rotation
//
// "bob.2" names a second device of user bob.
type worldKeys struct {
	w      *world
	kem    map[string]*e2ee.KEMSecretKey
	epochs map[e2ee.EpochID]*e2ee.EpochKey
	rand   *rand.ChaCha8
}

func newWorldKeys(w *world) *worldKeys {
	return &worldKeys{w: w, kem: map[string]*e2ee.KEMSecretKey{}, epochs: map[e2ee.EpochID]*e2ee.EpochKey{},
		rand: rand.NewChaCha8([32]byte{'p', 'a', 'r', 'l', 'e', 'y'})}
}

func (w *world) rng() io.Reader { return w.keys.rand }

func (k *worldKeys) record(name string) *e2ee.KEMRecord {
	sk := k.kem[name]
	if sk == nil {
		var seed [32]byte
		copy(seed[:], "kem:"+name)
		var err error
		if sk, err = e2ee.KEMSecretKeyFromSeed(seed[:]); err != nil {
			k.w.t.Fatal(err)
		}
		k.kem[name] = sk
	}
	rec, err := e2ee.SignKEMRecord(k.w.id(name).Device, sk.Public(), 0)
	if err != nil {
		k.w.t.Fatal(err)
	}
	return rec
}

func prevIDs(o *opts) []crdt.EventID {
	var out []crdt.EventID
	for _, p := range o.prev {
		out = append(out, p.ID)
	}
	return out
}

// options splits k=v options and flags off args.
func options(args []string) (rest []string, kv map[string]string) {
	kv = map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else if a == "norot" || a == "noepoch" {
			kv[a] = "1"
		} else {
			rest = append(rest, a)
		}
	}
	return rest, kv
}

// recipients adjusts a member device list by extra=N and missing=N.
func (k *worldKeys) recipients(base []*e2ee.KEMRecord, kv map[string]string) []*e2ee.KEMRecord {
	out := slices.Clone(base)
	if n := kv["extra"]; n != "" {
		out = append(out, k.record(n))
	}
	if n := kv["missing"]; n != "" {
		d := k.w.id(n).Device.Public()
		out = slices.DeleteFunc(out, func(r *e2ee.KEMRecord) bool { return r.Device == d })
	}
	slices.SortFunc(out, func(a, b *e2ee.KEMRecord) int { return slices.Compare(a.Device[:], b.Device[:]) })
	return slices.CompactFunc(out, func(a, b *e2ee.KEMRecord) bool { return a.Device == b.Device })
}

func (k *worldKeys) rotate(name string, reason e2ee.Reason, to []*e2ee.KEMRecord) (*e2ee.Rotation, []byte) {
	rot, key, err := e2ee.Rotate(k.rand, e2ee.RotateParams{Room: k.w.create.ID, Sender: k.w.id(name).Device.Public(), Reason: reason, Recipients: to})
	if err != nil {
		k.w.t.Fatal(err)
	}
	k.epochs[rot.Epoch] = key
	b, err := rot.Marshal()
	if err != nil {
		k.w.t.Fatal(err)
	}
	return rot, b
}

// embedRemoval puts a rotation into a kick or ban body: recipients are
// the member devices without the target's.
func (k *worldKeys) embedRemoval(name string, args []string, body *[]byte, o *opts) {
	args, kv := options(args)
	if kv["norot"] != "" {
		return
	}
	target := k.w.user(args[0])
	var mb MemberBody
	if err := DecodeBody(*body, &mb); err != nil {
		k.w.t.Fatal(err)
	}
	to := slices.DeleteFunc(k.w.room.MemberDevices(prevIDs(o)), func(r *e2ee.KEMRecord) bool {
		_, u := k.w.room.DeviceOf(r.Device)
		return u == target
	})
	rot, rb := k.rotate(name, e2ee.ReasonKick, k.recipients(to, kv))
	mb.Rotation, o.epoch = rb, rot.Epoch[:]
	*body = Encode(mb)
}

func (k *worldKeys) action(name, verb string, args []string, o *opts) (string, *string, []byte) {
	w := k.w
	args, kv := options(args)
	prev := prevIDs(o)
	me := w.id(name).Device.Public()
	switch verb {
	case "device":
		rec := k.record(name)
		kb, _ := rec.Marshal()
		body := DeviceBody{KEM: kb}
		if w.room.History() == HistoryJoined && kv["norot"] == "" {
			to := k.recipients(append(w.room.MemberDevices(prev), rec), kv)
			rot, rb := k.rotate(name, e2ee.ReasonJoinBarrier, to)
			body.Rotation, o.epoch = rb, rot.Epoch[:]
		}
		return TypeDevice, ptr(me.String()), Encode(body)
	case "remove-device":
		d := w.id(args[0]).Device.Public()
		body := DeviceBody{Removed: true}
		if kv["norot"] == "" {
			to := slices.DeleteFunc(w.room.MemberDevices(prev), func(r *e2ee.KEMRecord) bool { return r.Device == d })
			rot, rb := k.rotate(name, e2ee.ReasonDeviceRemoved, k.recipients(to, kv))
			body.Rotation, o.epoch = rb, rot.Epoch[:]
		}
		return TypeDevice, ptr(d.String()), Encode(body)
	case "rotate":
		rot, rb := k.rotate(name, e2ee.ReasonPeriodic, k.recipients(w.room.MemberDevices(prev), kv))
		o.epoch = rot.Epoch[:]
		return TypeRotate, nil, rb
	case "send":
		text := Encode(MessageBody{Text: strings.Join(args, " ")})
		if kv["noepoch"] != "" {
			return TypeMessage, nil, text
		}
		if l := kv["epoch"]; l != "" {
			o.seal = k.epochs[k.epochOf(l)]
		} else if adm := w.room.AdmissibleEpochs(prev); len(adm) > 0 {
			o.seal = k.epochs[adm[0].ID]
		}
		if o.seal == nil {
			w.t.Fatalf("no epoch to send with")
		}
		return TypeMessage, nil, text
	case "fwd":
		ep := k.epochOf(args[0])
		f, err := e2ee.Forward(me, k.epochs[ep], []*e2ee.KEMRecord{k.record(kv["to"])})
		if err != nil {
			w.t.Fatal(err)
		}
		b, err := f.Marshal()
		if err != nil {
			w.t.Fatal(err)
		}
		o.epoch = ep[:]
		return TypeKeyFwd, nil, b
	}
	w.t.Fatalf("unknown verb %q", verb)
	return "", nil, nil
}

// epochOf is the epoch a labeled event's envelope names.
func (k *worldKeys) epochOf(label string) e2ee.EpochID {
	e := k.w.labels[label]
	if e == nil {
		k.w.t.Fatalf("no event %q", label)
	}
	id, err := e2ee.EpochIDFromBytes(e.Epoch)
	if err != nil {
		k.w.t.Fatalf("event %q names no epoch", label)
	}
	return id
}
