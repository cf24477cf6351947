package authz

import "strings"

// describeUA turns a User-Agent into what a person recognises ("Firefox on
// Windows"); unknown agents fall back to the start of the raw string.
func describeUA(ua string) string {
	if ua == "" {
		return ""
	}
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"HeadlessChrome/", "Headless Chrome"},
		{"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"okhttp/", "Android app"}, {"CFNetwork/", "iOS app"},
		{"curl/", "curl"}, {"Go-http-client/", "Go program"}, {"python-requests/", "Python program"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	os := ""
	for _, o := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			os = o.name
			break
		}
	}
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "A device running " + os
	}
	if len(ua) > 60 {
		return ua[:57] + "…"
	}
	return ua
}
