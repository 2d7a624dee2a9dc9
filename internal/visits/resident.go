package visits

import (
	"context"
)

// ResidentVisit is a coming visit as the resident sees it at the kiosk: who, when,
// where.
type ResidentVisit struct {
	Visit
	Visitor string  // the family member's name
	Station Station // where to be
}

// Coming lists a resident's visits still to happen (requested, scheduled or
// live), soonest first, in the facility's zone: shown when they sign in at the
// kiosk, so no one misses a visit they were never told of.
func (s *Service) Coming(ctx context.Context, residentID string) ([]ResidentVisit, error) {
	r, err := s.fac.Resident(ctx, residentID)
	if err != nil {
		return nil, err
	}
	list, err := scanVisits(s.db.Read().QueryContext(ctx, "SELECT "+visitColumns+" FROM visits WHERE resident_id = $1 AND state IN "+
		bookedStates+" AND ends_at > $2 ORDER BY starts_at, id LIMIT 50", residentID, s.now().UTC()))
	if err != nil || len(list) == 0 {
		return nil, err
	}
	var contactIDs []string
	for _, v := range list {
		contactIDs = append(contactIDs, v.ContactID)
	}
	visitors, err := s.contacts.Visitors(ctx, r.Agency.ID, contactIDs)
	if err != nil {
		return nil, err
	}
	out := make([]ResidentVisit, 0, len(list))
	stations := map[string]map[string]Station{}
	for _, v := range list {
		p, err := s.place(ctx, v.FacilityID)
		if err != nil {
			return nil, err
		}
		if stations[p.ID] == nil {
			if stations[p.ID], err = s.allStations(ctx, p.ID); err != nil {
				return nil, err
			}
		}
		v.Start, v.End = v.Start.In(p.loc), v.End.In(p.loc)
		out = append(out, ResidentVisit{Visit: v, Visitor: visitors[v.ContactID].Name, Station: stations[p.ID][v.StationID]})
	}
	return out, nil
}
