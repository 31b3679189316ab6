//! The sign-in page, shown when the server asks for a login: single
//! sign-on (when the server has an identity provider) and passwords, and
//! why the last single sign-on failed (the server sends the browser back
//! with `?sign_in_error=`).

use canary_shared::Me;
use leptos::prelude::*;

/// User name and password; calls `on_signed_in` once the server accepted them.
#[component]
pub fn Login(
    /// Why the console asks (for example, a session that ended).
    notice: Option<String>,
    /// Called with who signed in.
    on_signed_in: Callback<Me>,
) -> impl IntoView {
    let user = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(notice.or_else(single_sign_on_error));
    let options = RwSignal::new(None::<canary_shared::auth::LoginOptions>);
    leptos::task::spawn_local(async move {
        options.set(crate::api::login_options().await.ok());
    });
    // Until the server says otherwise, passwords are offered.
    let passwords =
        move || options.with(|options| options.as_ref().is_none_or(|options| options.passwords));
    let sso = move || {
        options.get().and_then(|options| options.single_sign_on).map(|label| {
            let start = format!("{}{}", crate::api::mount_prefix(), canary_shared::auth::OIDC_START_PATH);
            view! {
                <a class="button button--primary login__sso" href=start data-testid="login-sso">{label}</a>
                <p class="login__or" hidden=move || !passwords()>"or with a user name and password"</p>
            }
        })
    };
    let busy = RwSignal::new(false);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let (name, secret) = (user.get_untracked(), password.get_untracked());
        leptos::task::spawn_local(async move {
            match crate::api::login(&name, &secret).await {
                Ok(me) => {
                    password.set(String::new());
                    on_signed_in.run(me);
                }
                Err(err) => error.set(Some(err.to_string())),
            }
            busy.set(false);
        });
    };
    view! {
        <main class="login">
            <form class="login__card card" on:submit=submit data-testid="login-form">
                <div class="brand">
                    <span class="brand__mark" aria-hidden="true"></span>
                    <span class="brand__name">"canary"</span>
                </div>
                <h1 class="login__title">"Sign in"</h1>
                {sso}
                <label class="field" hidden=move || !passwords()>
                    <span>"User name"</span>
                    <input
                        name="user"
                        autocomplete="username"
                        required
                        data-testid="login-user"
                        prop:value=move || user.get()
                        on:input=move |event| user.set(event_target_value(&event))
                    />
                </label>
                <label class="field" hidden=move || !passwords()>
                    <span>"Password"</span>
                    <input
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                        data-testid="login-password"
                        prop:value=move || password.get()
                        on:input=move |event| password.set(event_target_value(&event))
                    />
                </label>
                <Show when=move || error.with(Option::is_some)>
                    <p class="login__error" role="alert" data-testid="login-error">
                        {move || error.get().unwrap_or_default()}
                    </p>
                </Show>
                <button class="button button--primary" type="submit" hidden=move || !passwords() disabled=move || busy.get() data-testid="login-submit">
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </main>
    }
}

/// Why the last single sign-on failed, from the page's `?sign_in_error=`;
/// taken off the address so a reload does not show it again.
fn single_sign_on_error() -> Option<String> {
    let window = window();
    let search = window.location().search().ok()?;
    let why = web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get("sign_in_error")?;
    if let (Ok(history), Ok(path)) = (window.history(), window.location().pathname()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
    Some(why)
}
