package approvals

import (
	"github.com/warden-mcp/warden"
)

// preview asks the tool what the held write will do, for the request
// (issue 17, item 3). A preview that could not be made says so; the
// request is made either way, bound to the call alone.
func (s *Service) preview(est *estimate) *warden.WritePreview {
	if est.preview == nil {
		return nil
	}
	pv, err := est.preview()
	if err != nil {
		msg := "the preview could not be made"
		if we, ok := err.(*warden.Error); ok && we.Message != "" {
			msg += ": " + we.Message
		}
		s.log().Warn("write preview failed", "err", msg)
		return &warden.WritePreview{NotPreviewed: msg}
	}
	if pv == nil {
		return nil
	}
	if s.Scrubber != nil {
		// The detectors that scrub recorded text scrub the preview too:
		// it is stored and shown to reviewers.
		for _, img := range [][][]*string{pv.Before, pv.After} {
			for _, row := range img {
				for i, c := range row {
					if c != nil {
						v, _ := s.Scrubber.Scrub(*c)
						row[i] = &v
					}
				}
			}
		}
	}
	return pv
}

// bindPreview binds the released call to what was previewed: the tool
// refuses it unless the rows it affects still have the preview's digest.
func bindPreview(c *warden.Call, appr *warden.Approval) {
	if appr.Preview != nil && appr.Preview.Digest != "" && c.Action != nil {
		c.Action.PreviewDigest = appr.Preview.Digest
	}
}
