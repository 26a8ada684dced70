package mimi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Every way a message can be non-deterministic or break the schema is
// refused (§6.1-§6.3, §9.1).
func TestDecodeRejects(t *testing.T) {
	orig := vectorByName(t, "original")
	good, err := Encode(orig)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":             {},
		"trailing byte":     append(bytes.Clone(good), 0x00),
		"truncated":         good[:len(good)-1],
		"indefinite array":  append([]byte{0x9f}, append(good[1:], 0xff)...),
		"six elements":      append([]byte{0x86}, good[1:]...),
		"salt 15":           bytes.Replace(good, h("505eed9406c2545547ab6f09f20a18b003"), h("4f5eed9406c2545547ab6f09f20a18b0"), 1),
		"non-shortest uint": bytes.Replace(good, h("85016001781e"), h("8518016001781e"), 1),
		"non-shortest len":  bytes.Replace(good, h("85016001781e"), h("8501780001781e"), 1),
		"text salt":         bytes.Replace(good, h("505eed"), h("705eed"), 1),
	}
	// Cardinality 0 with the 5 elements of a single part.
	cases["null part 5 elems"] = bytes.Replace(good, h("85016001781e"), h("85016000781e"), 1)
	// Unsorted extension keys: swap keys 1 and 2 with their values.
	k1 := h("0178206d696d693a2f2f6578616d706c652e636f6d2f752f616c6963652d736d697468")
	k2 := h("0278256d696d693a2f2f6578616d706c652e636f6d2f722f656e67696e656572696e675f7465616d")
	cases["unsorted keys"] = bytes.Replace(good, append(bytes.Clone(k1), k2...), append(bytes.Clone(k2), k1...), 1)
	cases["duplicate keys"] = bytes.Replace(good, append(bytes.Clone(k1), k2...), append(bytes.Clone(k1), append([]byte{0x01}, k2[1:]...)...), 1)
	cases["sender not text"] = bytes.Replace(good, h("017820"), h("015820"), 1)
	cases["invalid utf-8"] = bytes.Replace(good, h("6d696d693a2f2f6578616d706c652e636f6d2f752f616c696365"), h("6d696d693a2f2f6578616d706c652e636f6d2f752f616c69ff"), 1)
	cases["undefined"] = bytes.Replace(good, h("f640f6f6"), h("f740f6f6"), 1)
	cases["float NaN payload"] = bytes.Replace(good, h("f640f6f6"), h("f97e01"), 1)
	cases["bad disposition"] = bytes.Replace(good, h("85016001781e"), h("85190100"), 1)
	cases["cardinality 4"] = bytes.Replace(good, h("85016001781e"), h("85016004781e"), 1)
	cases["reserved ai"] = bytes.Replace(good, h("f640f6f6"), h("1c40f6f6"), 1)

	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestLimits(t *testing.T) {
	hd := Header{SenderURI: "mimi://a/u/x", RoomURI: "mimi://a/r/y"}
	leaf := TextPart("x")
	nest := func(depth int) Part {
		p := leaf
		for i := 1; i < depth; i++ {
			p = Part{Disposition: Render, Cardinality: MultiPart, Semantics: ProcessAll, Parts: []Part{p, leaf}}
		}
		return p
	}
	if _, err := Encode(New(hd, nest(4))); err != nil {
		t.Errorf("depth 4: %v", err)
	}
	if _, err := Encode(New(hd, nest(5))); !errors.Is(err, ErrMalformed) {
		t.Errorf("depth 5: err = %v", err)
	}
	many := make([]Part, MaxParts)
	for i := range many {
		many[i] = leaf
	}
	if _, err := Encode(New(hd, Part{Cardinality: MultiPart, Parts: many})); !errors.Is(err, ErrMalformed) {
		t.Errorf("%d+1 parts: err = %v", MaxParts, err)
	}
	c := New(hd, leaf)
	c.TopicID = make([]byte, MaxTopicID+1)
	if _, err := Encode(c); err == nil {
		t.Error("topic id too long accepted")
	}
	c = New(hd, Part{Cardinality: MultiPart, Parts: []Part{leaf}})
	if _, err := Encode(c); err == nil {
		t.Error("multipart with one part accepted")
	}
	for _, k := range []ExtKey{IntKey(0), IntKey(1 << 53), TextKey(""), TextKey(string(make([]byte, 256)))} {
		c := New(hd, leaf)
		c.Extensions[k] = []byte{0x00}
		if _, err := Encode(c); err == nil {
			t.Errorf("extension key %v accepted", k)
		}
	}
	c = New(hd, leaf)
	c.Extensions[IntKey(-7)] = h("8181818100") // 4 levels: fine
	if _, err := Encode(c); err != nil {
		t.Errorf("4-level extension value: %v", err)
	}
	c.Extensions[IntKey(-7)] = h("818181818100") // 5 levels
	if _, err := Encode(c); err == nil {
		t.Error("5-level extension value accepted")
	}
	c.Extensions[IntKey(-7)] = h("1800") // non-shortest
	if _, err := Encode(c); err == nil {
		t.Error("non-deterministic extension value accepted")
	}
	c = New(hd, TextPart("\xff"))
	c.Body.ContentType = "\xff"
	if _, err := Encode(c); err == nil {
		t.Error("invalid UTF-8 content type accepted")
	}
}

// Floats in extension values must be shortest (§6.1) and the only NaN is
// f97e00 (§6.2).
func TestFloats(t *testing.T) {
	hd := Header{SenderURI: "s", RoomURI: "r"}
	for v, ok := range map[string]bool{
		"f93c00":             true,  // 1.0 as half
		"fa3f800000":         false, // 1.0 as single
		"fb3ff0000000000000": false, // 1.0 as double
		"fa3f800001":         true,  // needs single
		"fb3ff0000000000001": true,  // needs double
		"f97e00":             true,
		"f97e01":             false,
		"fa7fc00000":         false,
	} {
		c := New(hd, TextPart("x"))
		c.Extensions[IntKey(-1)] = h(v)
		_, err := Encode(c)
		if (err == nil) != ok {
			t.Errorf("%s: err = %v, want ok=%v", v, err, ok)
		}
	}
}
