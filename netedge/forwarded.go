package netedge

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrMalformed is a Forwarded field, node or value that does not follow
// RFC 7239.
var ErrMalformed = errors.New("malformed Forwarded header")

// Element is one forwarded-element: lower-case parameter names, values with
// any quoting removed. A nil Element stands for text that did not parse.
type Element map[string]string

// ParseForwarded reads one Forwarded field line (RFC 7239 §4):
//
//	Forwarded         = 1#forwarded-element
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" ( token / quoted-string )
//
// An unquoted value is read liberally (see isBareValueChar); values are
// written strictly (ElementWriter).
// Separators inside a quoted-string are data, so for="[2001:db8::1]:4711"
// and host="a;b,c" are single values. Optional whitespace around
// separators is accepted; empty list members and empty pairs are skipped
// (RFC 7230 §7). A parameter named twice in one element is an error (RFC
// 7239 §4: it "MUST NOT occur more than once").
//
// On a fault it returns the elements before it and an error wrapping
// ErrMalformed. Nothing after a fault is returned: once a quote is
// unbalanced, which text is quoted is a guess, and an unterminated quote
// sent by a client would otherwise swallow the element its proxy appended.
func ParseForwarded(line string) ([]Element, error) {
	var out []Element
	p := parser{s: line}
	for {
		el, err := p.element()
		if err != nil {
			return out, fmt.Errorf("%w: %v at byte %d of %q", ErrMalformed, err, p.i, line)
		}
		if len(el) > 0 {
			out = append(out, el)
		}
		if p.done() {
			return out, nil
		}
		p.i++ // the ',' that ended the element
	}
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) skipOWS() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// element reads pairs up to an unquoted ',' or the end of the line.
func (p *parser) element() (Element, error) {
	el := Element{}
	for {
		p.skipOWS()
		if !p.done() && p.s[p.i] != ';' && p.s[p.i] != ',' {
			name, value, err := p.pair()
			if err != nil {
				return nil, err
			}
			if _, dup := el[name]; dup {
				return nil, fmt.Errorf("parameter %s repeated", name)
			}
			el[name] = value
			p.skipOWS()
		}
		switch {
		case p.done() || p.s[p.i] == ',':
			return el, nil
		case p.s[p.i] == ';':
			p.i++
		default:
			return nil, fmt.Errorf("unexpected %q", p.s[p.i])
		}
	}
}

func (p *parser) pair() (name, value string, err error) {
	name = p.token()
	if name == "" {
		return "", "", fmt.Errorf("expected a parameter name, got %q", p.s[p.i])
	}
	p.skipOWS()
	if p.done() || p.s[p.i] != '=' {
		return "", "", fmt.Errorf("parameter %s without a value", name)
	}
	p.i++
	p.skipOWS()
	if !p.done() && p.s[p.i] == '"' {
		value, err = p.quoted()
		return strings.ToLower(name), value, err
	}
	start := p.i
	for !p.done() && isBareValueChar(p.s[p.i]) {
		p.i++
	}
	if value = p.s[start:p.i]; value == "" {
		return "", "", fmt.Errorf("parameter %s has an empty value", name)
	}
	return strings.ToLower(name), value, nil
}

// isBareValueChar is what an unquoted value may hold when read: a visible
// character other than '"', ';' and ','. RFC 7239 asks for a token, but
// proxies commonly write for=192.0.2.1:4711 and prefix=/api unquoted.
// Accepting them cannot move a separator: a quote still starts a
// quoted-string and ';' and ',' still end the value.
func isBareValueChar(c byte) bool {
	return 0x21 <= c && c <= 0x7E && c != '"' && c != ';' && c != ','
}

func (p *parser) token() string {
	start := p.i
	for !p.done() && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted-string (RFC 7230 §3.2.6) starting at its '"'.
func (p *parser) quoted() (string, error) {
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			p.i++
			if p.done() || !isQuotedPairChar(p.s[p.i]) {
				return "", errors.New("bad quoted-pair")
			}
			b.WriteByte(p.s[p.i])
		case isQdtext(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("%q inside a quoted-string", c)
		}
		p.i++
	}
	return "", errors.New("unterminated quoted-string")
}

// Node is a for= or by= value (RFC 7239 §6). Addr is the zero Addr for
// "unknown" and for obfuscated identifiers, which Name then holds.
type Node struct {
	Addr netip.Addr // IPv4-mapped IPv6 is unmapped
	Name string     // "unknown" or an obfuscated identifier ("_hidden")
	Port string     // digits, an obfuscated port ("_p1"), or ""
}

// ParseNode reads an unquoted node: nodename [ ":" node-port ], where
// nodename is IPv4, a bracketed IPv6 address, "unknown" or "_"-prefixed
// obfuscated identifier.
func ParseNode(s string) (Node, error) {
	var n Node
	rest := ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Node{}, fmt.Errorf("%w: node %q: unclosed bracket", ErrMalformed, s)
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Node{}, fmt.Errorf("%w: node %q: not an IPv6 address in brackets", ErrMalformed, s)
		}
		n.Addr, rest = a.Unmap(), s[end+1:]
	} else {
		name, port, hasPort := strings.Cut(s, ":")
		switch {
		case strings.EqualFold(name, "unknown"):
			n.Name = "unknown"
		case isObfuscated(name):
			n.Name = name
		default:
			a, err := netip.ParseAddr(name)
			if err != nil || !a.Is4() {
				return Node{}, fmt.Errorf("%w: node %q: not IPv4, [IPv6], unknown or _obfuscated", ErrMalformed, s)
			}
			n.Addr = a
		}
		if hasPort {
			rest = ":" + port
		}
	}
	if rest != "" {
		port, ok := strings.CutPrefix(rest, ":")
		if !ok || !(isDigits(port, 5) || isObfuscated(port)) {
			return Node{}, fmt.Errorf("%w: node %q: bad port", ErrMalformed, s)
		}
		n.Port = port
	}
	return n, nil
}

// isObfuscated is RFC 7239 §6.3 obfnode / obfport:
// "_" 1*( ALPHA / DIGIT / "." / "_" / "-" ).
func isObfuscated(s string) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ElementWriter builds one forwarded-element, pairs joined by ';'. Every
// value is written as a token, or else as a quoted-string with '"' and '\'
// escaped, so no value can end its pair or element early (RFC 7239 §4).
// The zero value is ready to use; the first error sticks.
type ElementWriter struct {
	b   strings.Builder
	err error
}

// Pair appends name=value.
func (w *ElementWriter) Pair(name, value string) { w.pair(name, value, false) }

// PathPair appends name=value where value is a path. A path made of token
// characters and '/' is written bare (prefix=/search/v1), as Postern's
// published Forwarded contract shows it; '/' is not a tchar, but it is no
// delimiter of RFC 7239 either, so it cannot end a value early. Any other
// path is quoted.
func (w *ElementWriter) PathPair(name, value string) { w.pair(name, value, true) }

func (w *ElementWriter) pair(name, value string, slashOK bool) {
	if w.err != nil {
		return
	}
	if name == "" || !allBytes(name, isTchar) {
		w.err = fmt.Errorf("forwarded parameter name %q is not a token", name)
		return
	}
	if w.b.Len() > 0 {
		w.b.WriteByte(';')
	}
	w.b.WriteString(name)
	w.b.WriteByte('=')
	bare := value != "" && allBytes(value, func(c byte) bool { return isTchar(c) || (slashOK && c == '/') })
	if bare {
		w.b.WriteString(value)
		return
	}
	w.b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '"' || c == '\\':
			w.b.WriteByte('\\')
		case !isQdtext(c):
			// A control character has no spelling in a quoted-string.
			w.err = fmt.Errorf("forwarded parameter %s: value %q holds a control character", name, value)
			return
		}
		w.b.WriteByte(c)
	}
	w.b.WriteByte('"')
}

// String returns the element, or the first error met while writing it.
func (w *ElementWriter) String() (string, error) {
	if w.err != nil {
		return "", w.err
	}
	return w.b.String(), nil
}

// isTchar is RFC 7230 §3.2.6 tchar.
func isTchar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isQdtext is RFC 7230 qdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E /
// obs-text.
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (0x23 <= c && c <= 0x5B) || (0x5D <= c && c <= 0x7E) || c >= 0x80
}

// isQuotedPairChar: HTAB / SP / VCHAR / obs-text.
func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (0x21 <= c && c <= 0x7E) || c >= 0x80
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isDigits(s string, max int) bool {
	return s != "" && len(s) <= max && allBytes(s, func(c byte) bool { return '0' <= c && c <= '9' })
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}
