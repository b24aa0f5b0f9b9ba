package circlebridge

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ownEmulator starts an emulator for one test and returns its JSON line, private key included
// (the demo key pair a developer's backend would hold); the shared one's key is not recorded.
func ownEmulator(t *testing.T) (env []string, privateKey string) {
	t.Helper()
	env, privateKey, _ = ownEmulatorWithControl(t)
	return env, privateKey
}

// ownEmulatorWithControl also returns the emulator's control URL (see emulatorStats).
func ownEmulatorWithControl(t *testing.T) (env []string, privateKey, controlURL string) {
	t.Helper()
	text, stop, err := startAnnounced(exec.Command(bridgeBin, "emulator"))
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(stop)
	var info struct {
		emulatorInfo
		PrivateKey string `json:"privateKey"`
	}
	if err := json.Unmarshal(text, &info); err != nil || info.PrivateKey == "" {
		t.Fatalf("emulator printed %q (%v)", text, err)
	}
	env = []string{
		"CIRCLE_CUSTOMER_ID=" + info.CustomerID,
		"CIRCLE_APP_KEY=" + info.AppKey,
		"CIRCLE_END_USER_ID=" + info.EndUserID,
		"CIRCLE_SECRET=" + info.Secret,
		"CIRCLE_TOKEN_URL=" + info.TokenURL,
		"CIRCLE_SERVICE_URL=" + info.ServiceURL,
	}
	return env, info.PrivateKey, info.ControlURL
}

// decryptAsBackend runs `circle-bridge unlock-codes decrypt`, as a developer's backend would.
func decryptAsBackend(t *testing.T, privateKey string, locked *LockUserResult) []string {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "circle-private.key")
	if err := os.WriteFile(keyFile, []byte(privateKey), 0o600); err != nil {
		t.Fatal(err)
	}
	input, err := json.Marshal(locked)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bridgeBin, "unlock-codes", "decrypt", "--private-key-file", keyFile)
	cmd.Stdin = strings.NewReader(string(input))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unlock-codes decrypt: %v", err)
	}
	return strings.Fields(string(out))
}

func TestCircleAPIEndToEnd(t *testing.T) {
	env, privateKey := ownEmulator(t)
	c := spawn(t, Options{Env: env})
	ctx := testContext(t)

	created, err := c.Circle.CreateCircle(ctx, CreateCircleParams{CircleName: "Go ✓"})
	if err != nil || created.CircleID == "" {
		t.Fatalf("CreateCircle = %+v, %v", created, err)
	}
	circle := created.CircleID
	topics, err := c.Circle.EnumTopics(ctx, EnumTopicsParams{CircleID: circle})
	if err != nil || len(topics.Topics) != 1 {
		t.Fatalf("EnumTopics = %+v, %v", topics, err)
	}
	topic := topics.Topics[0].TopicID

	for _, value := range []string{"old", "new"} {
		if _, err := c.Circle.PutSecret(ctx, PutSecretParams{Name: "go-key", Value: value, CircleID: circle}); err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
	}
	secret, err := c.Circle.GetSecret(ctx, GetSecretParams{Name: "go-key", CircleID: circle})
	if err != nil || !secret.Found || secret.Value != "new" || secret.TopicID != topic {
		t.Fatalf("GetSecret = %+v, %v", secret, err)
	}

	if _, err := c.Circle.AddMessage(ctx, AddMessageParams{CircleID: circle, TopicID: topic, Message: "hello"}); err != nil {
		t.Fatalf("AddMessage: %v", err)
	}
	five := 5
	if _, err := c.Circle.AddMessage(ctx, AddMessageParams{CircleID: circle, TopicID: topic, Message: "typed", MessageType: &five}); err != nil {
		t.Fatalf("AddMessage: %v", err)
	}
	typed, err := c.Circle.GetMessages(ctx, GetMessagesParams{CircleID: circle, TopicID: topic, MsgTypeFilters: []int{5}})
	if err != nil || len(typed.Messages) != 1 || typed.Messages[0].Message != "typed" {
		t.Fatalf("GetMessages([5]) = %+v, %v", typed, err)
	}
	when, err := time.Parse(time.RFC3339Nano, typed.Messages[0].Time)
	if err != nil || when.UnixMilli() != int64(*typed.Messages[0].MessageTimeOffset) {
		t.Errorf("time %q does not match messageTimeOffset %v (%v)", typed.Messages[0].Time, typed.Messages[0].MessageTimeOffset, err)
	}

	attached, err := c.Circle.AddMessage(ctx, AddMessageParams{CircleID: circle, TopicID: topic, Message: "scan", Base64Data: "aGk="})
	if err != nil || attached.Messages == nil {
		t.Fatalf("AddMessage with data = %+v, %v", attached, err)
	}
	var sealed string
	if err := json.Unmarshal(attached.Messages.Extra["base64Data"], &sealed); err != nil || sealed == "aGk=" {
		t.Fatalf("stored base64Data %q (%v): want it sealed to the topic", sealed, err)
	}
	opened, err := c.Circle.Decrypt(ctx, DecryptParams{CircleID: circle, TopicID: topic, ToDecrypt: sealed})
	if err != nil || opened.DecryptedData != "aGk=" {
		t.Fatalf("Decrypt = %+v, %v", opened, err)
	}

	who, err := c.Circle.WhoAmI(ctx, CircleParams{CircleID: circle})
	if err != nil || who.Locked {
		t.Fatalf("WhoAmI before lock = %+v, %v", who, err)
	}
	locked, err := c.Circle.LockUser(ctx, LockUserParams{CircleID: circle})
	if err != nil || len(locked.EncryptedUnlockCodes) != 2 {
		t.Fatalf("LockUser = %+v, %v", locked, err)
	}
	if who, err = c.Circle.WhoAmI(ctx, CircleParams{CircleID: circle}); err != nil || !who.Locked {
		t.Fatalf("WhoAmI after lock = %+v, %v", who, err)
	}
	_, err = c.Circle.GetSecret(ctx, GetSecretParams{Name: "go-key", CircleID: circle})
	var rpcErr *Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeCircleOperationFailed {
		t.Fatalf("GetSecret while locked: %v, want CircleOperationFailed", err)
	}
	codes := decryptAsBackend(t, privateKey, locked)
	if _, err := c.Circle.UnlockUser(ctx, UnlockUserParams{CircleID: circle, UnlockCodes: codes}); err != nil {
		t.Fatalf("UnlockUser: %v", err)
	}
	if who, err = c.Circle.WhoAmI(ctx, CircleParams{CircleID: circle}); err != nil || who.Locked {
		t.Fatalf("WhoAmI after unlock = %+v, %v", who, err)
	}

	invite, err := c.Circle.GenInvite(ctx, GenInviteParams{CircleID: circle})
	if err != nil || invite.Invite == nil {
		t.Fatalf("GenInvite = %+v, %v", invite, err)
	}
	accepted, err := c.Circle.ProcessInvite(ctx, ProcessInviteParams{InviteID: invite.Invite.InviteID, AuthCode: invite.Invite.AuthCode})
	if err != nil || accepted.RequestAuthVerificationID == "" {
		t.Fatalf("ProcessInvite = %+v, %v", accepted, err)
	}
	if _, err := c.Circle.AddFile(ctx, AddFileParams{CircleID: circle, TopicID: topic, FilePath: "/tmp/go-notes.txt"}); err != nil {
		t.Fatalf("AddFile: %v", err)
	}
	files, err := c.Circle.EnumFiles(ctx, TopicParams{CircleID: circle, TopicID: topic})
	if err != nil || len(files.Files) != 1 || files.Files[0].FileName != "go-notes.txt" || files.Files[0].FmapID == "" {
		t.Fatalf("EnumFiles = %+v, %v", files, err)
	}
}

func TestCreateCircleIsCancelledWithItsContext(t *testing.T) {
	// its own emulator: a cancelled creation may still complete upstream, and the shared
	// emulator's circles are what Example prints
	env, _ := ownEmulator(t)
	c := spawn(t, Options{Env: env})
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		_, err := c.Circle.CreateCircle(ctx, CreateCircleParams{CircleName: "never mind", WorkDoneToken: json.RawMessage(`"go-1"`)})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateCircle after cancel: %v, want context.Canceled", err)
	}
	// the connection is still usable: the bridge answered the cancel, the client dropped it
	if _, err := c.Circle.WhoAmI(testContext(t), CircleParams{CircleID: "7b1c4e0a-3f5d-4c2e-9a61-0d8f2b6c1e01"}); err != nil {
		t.Fatalf("WhoAmI after the cancel: %v", err)
	}
}
