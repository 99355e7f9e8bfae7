package mcpserver

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// A light reader of JSON objects that json.Valid has already checked: it
// finds members and the bounds of values without decoding them, so that the
// stdio loop reads a tools/call line in one validating pass and a few
// searches for quotes (plainCall) instead of the eight scans of four nested
// json.Unmarshal calls (envelope, params, arguments as any, arguments as the
// tool's type: 8 % of a session's CPU on the question -> answer path of SPEC
// section 10, most of it over the 1 KiB body). Every index is checked, so
// that input it was not meant for makes it fail rather than panic.

// eachMember calls fn with the raw key (between its quotes, escapes left as
// they are) and the raw value of each member of the JSON object b, in order.
// It returns false if b is not an object or fn returned false.
func eachMember(b []byte, fn func(key, val []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := stringEnd(b, i)
		if end < 0 {
			return false
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vend := valueEnd(b, i)
		if vend < 0 || !fn(key, b[i:vend]) {
			return false
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i]
// (a quote), or -1.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for j <= len(b) {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		// The quote ends the string unless an odd number of backslashes
		// escapes it.
		n := 0
		for k := q - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return -1
}

// valueEnd returns the index just past the value that starts at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// plainString returns the text of the raw JSON string v when it has no
// escapes and is valid UTF-8 (so that decoding changes nothing).
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// scalarType is the JSON type of a raw scalar value as argProblems names it
// (jsonType of what encoding/json decodes it to); ok is false for objects,
// arrays and numbers that do not fit a float64 (which encoding/json refuses).
func scalarType(v []byte) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	switch c := v[0]; {
	case c == '"':
		return "string", true
	case string(v) == "true" || string(v) == "false":
		return "boolean", true
	case string(v) == "null":
		return "null", true
	case c == '-' || (c >= '0' && c <= '9'):
		x, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return "", false
		}
		return jsonType(x), true
	}
	return "", false
}

// setString decodes the raw JSON value v into *dst as encoding/json does.
func setString(dst *string, v []byte) error {
	if s, ok := plainString(v); ok {
		*dst = s
		return nil
	}
	return json.Unmarshal(v, dst)
}
