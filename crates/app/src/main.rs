//! Entry point of the console: mounts [`canary_app::App`] on the page body.

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(canary_app::App);
}
