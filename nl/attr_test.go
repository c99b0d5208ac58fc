package nl

import (
	"bytes"
	"strings"
	"testing"
)

func TestAttributesRoundTrip(t *testing.T) {
	ae := NewAttributeEncoder()
	ae.Uint8(1, 7)
	ae.Uint16(2, 0xBEEF)
	ae.Uint32(3, 0xDEADBEEF)
	ae.Int32(4, -2)
	ae.String(5, "can0")
	ae.Bytes(6, []byte{1, 2, 3})
	ae.Nested(7, func(n *AttributeEncoder) error {
		n.String(1, "vxcan")
		return nil
	})
	ae.Do(8, func() ([]byte, error) { return []byte{9}, nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%4 != 0 {
		t.Fatalf("attributes of %d bytes are not 4-aligned", len(b))
	}
	ad, _ := NewAttributeDecoder(b)
	var got []string
	for ad.Next() {
		switch ad.Type() {
		case 1:
			got = append(got, string(rune('0'+ad.Uint8())))
		case 2:
			if ad.Uint16() != 0xBEEF {
				t.Error("u16")
			}
		case 3:
			if ad.Uint32() != 0xDEADBEEF {
				t.Error("u32")
			}
		case 4:
			if ad.Int32() != -2 {
				t.Error("s32")
			}
		case 5:
			got = append(got, ad.String())
		case 6:
			if !bytes.Equal(ad.Bytes(), []byte{1, 2, 3}) {
				t.Error("bytes")
			}
		case 7:
			ad.Nested(func(n *AttributeDecoder) error {
				for n.Next() {
					got = append(got, n.String())
				}
				return nil
			})
		case 8:
			got = append(got, "do")
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "7 can0 vxcan do" {
		t.Fatalf("decoded %v", got)
	}
}

func TestAttributeDecoderErrors(t *testing.T) {
	ae := NewAttributeEncoder()
	ae.Uint16(3, 1)
	b, _ := ae.Encode()
	ad, _ := NewAttributeDecoder(b)
	ad.Next()
	ad.Uint32()
	if err := ad.Err(); err == nil || !strings.Contains(err.Error(), "attribute 3: length 2, want 4") {
		t.Fatalf("wrong size: %v", err)
	}
	ad, _ = NewAttributeDecoder([]byte{50, 0, 1, 0, 0, 0, 0, 0})
	if ad.Next() || ad.Err() == nil || !strings.Contains(ad.Err().Error(), "length 50") {
		t.Fatalf("overlong attribute: %v", ad.Err())
	}
	ad, _ = NewAttributeDecoder([]byte{1, 2})
	if ad.Next() || ad.Err() == nil {
		t.Fatal("trailing bytes accepted")
	}
}
