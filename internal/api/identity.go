package api

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/identity"
)

type question struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

func (a *API) securityQuestions(w http.ResponseWriter, r *http.Request) {
	lang := a.lang(r)
	out := make([]question, len(identity.SecurityQuestions()))
	for i, id := range identity.SecurityQuestions() {
		out[i] = question{ID: id, Text: a.cat.T(lang, "question."+id)}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) signup(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email              string `json:"email"`
		Password           string `json:"password"`
		FullName           string `json:"full_name"`
		SecurityQuestionID string `json:"security_question_id"`
		SecurityAnswer     string `json:"security_answer"`
		Locale             string `json:"locale"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	if req.Locale == "" {
		req.Locale = a.lang(r)
	}
	err := a.identity.Signup(r.Context(), identity.SignupRequest{
		Email: req.Email, Password: req.Password, FullName: req.FullName,
		SecurityQuestion: req.SecurityQuestionID, SecurityAnswer: req.SecurityAnswer, Locale: req.Locale,
	}, client(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "verification_sent"})
}

type accountJSON struct {
	ID                        string `json:"id"`
	Email                     string `json:"email"`
	FullName                  string `json:"full_name"`
	Locale                    string `json:"locale"`
	TwoFactorEnabled          bool   `json:"two_factor_enabled"`
	EmailWhenVideoGramWatched bool   `json:"email_when_videogram_watched"`
}

func accountOf(acct identity.Account) accountJSON {
	return accountJSON{ID: acct.ID, Email: acct.Email, FullName: acct.FullName, Locale: acct.Locale, TwoFactorEnabled: acct.TwoFactor,
		EmailWhenVideoGramWatched: acct.EmailWhenWatched}
}

func (a *API) signupVerify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Code     string `json:"code"`
		Password string `json:"password"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	acct, sess, err := a.identity.VerifySignup(r.Context(), req.Email, req.Code, req.Password, identity.APISession, "", client(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": sess.Token, "expires_at": rfc3339(sess.ExpiresAt), "account": accountOf(acct),
		"device_token": sess.Device})
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		TOTPCode string `json:"totp_code"`
		Device   string `json:"device_token"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	var devices []string
	if req.Device != "" {
		devices = []string{req.Device}
	}
	sess, err := a.identity.Login(r.Context(), identity.LoginRequest{Email: req.Email, Password: req.Password, Code: req.TOTPCode,
		Kind: identity.APISession, Devices: devices}, client(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": sess.Token, "expires_at": rfc3339(sess.ExpiresAt), "device_token": sess.Device})
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, accountOf(auth(r).account))
}

// changeSettings changes the settings the request names, and answers the account.
func (a *API) changeSettings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Locale                    *string `json:"locale"`
		EmailWhenVideoGramWatched *bool   `json:"email_when_videogram_watched"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	acct, err := a.identity.ChangeSettings(r.Context(), auth(r).account.ID, identity.Settings{Locale: req.Locale, EmailWhenWatched: req.EmailWhenVideoGramWatched})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, accountOf(acct))
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	if err := a.identity.Logout(r.Context(), auth(r).token, client(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) passwordForgot(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email string `json:"email"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	if err := a.identity.ForgotPassword(r.Context(), req.Email, client(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "code_sent_if_account_exists"})
}

func (a *API) passwordVerify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email string `json:"email"`
		Code  string `json:"code"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	step, err := a.identity.VerifyReset(r.Context(), req.Email, req.Code, client(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body := map[string]any{
		"reset_token":          step.Token,
		"security_question":    a.cat.T(a.lang(r), "question."+step.Question),
		"security_question_id": step.Question,
	}
	if step.Wait != nil {
		body["wait"] = waitJSON(*step.Wait)
	}
	writeJSON(w, http.StatusOK, body)
}

// waitJSON is a reset without the security answer: waiting until ready_at, or ready.
func waitJSON(wait identity.ResetWait) map[string]string {
	status := "waiting"
	if wait.Ready {
		status = "ready"
	}
	return map[string]string{"status": status, "ready_at": rfc3339(wait.ReadyAt)}
}

// passwordForgotAnswer asks for a reset without the security answer: 202 when its
// wait starts, 200 when one is ready to finish, 409 with the time left before.
func (a *API) passwordForgotAnswer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ResetToken string `json:"reset_token"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	wait, started, err := a.identity.ForgotAnswer(r.Context(), req.ResetToken, client(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if started {
		status = http.StatusAccepted
	}
	writeJSON(w, status, waitJSON(wait))
}

// passwordRenew finishes a reset without the security answer whose wait is over:
// a new password and a new question and answer.
func (a *API) passwordRenew(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ResetToken         string `json:"reset_token"`
		NewPassword        string `json:"new_password"`
		SecurityQuestionID string `json:"security_question_id"`
		SecurityAnswer     string `json:"security_answer"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	err := a.identity.RenewPassword(r.Context(), req.ResetToken, req.NewPassword, req.SecurityQuestionID, req.SecurityAnswer, client(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) passwordReset(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ResetToken     string `json:"reset_token"`
		SecurityAnswer string `json:"security_answer"`
		NewPassword    string `json:"new_password"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	if err := a.identity.ResetPassword(r.Context(), req.ResetToken, req.SecurityAnswer, req.NewPassword, client(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
