//! The sign-in page, shown when the server asks for a login.

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
    let error = RwSignal::new(notice);
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
                <label class="field">
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
                <label class="field">
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
                <button class="button button--primary" type="submit" disabled=move || busy.get() data-testid="login-submit">
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </main>
    }
}
