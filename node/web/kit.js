// The app's shared helpers for the feature modules (devices.js, verify.js,
// notify.js, voice.js, ...): app.js fills this object at start, so a module
// needs no import of app.js (which imports the modules).
//
// Fields: S (the app state), dialog(title, role, cls), formDialog(title,
// fields, submit, onSubmit), field(label, input), toast(text),
// nameOf(user), short(id), avatar(user, name), refreshInfo(), refreshRooms().
export const kit = {};
