//! A segmented control: a row of buttons of which one is pressed.
//!
//! Not generic on purpose: every instantiation of a Leptos component costs
//! release size, so callers map their choices to and from indices.

use leptos::prelude::*;

/// One button per label; pressing one calls `on_select` with its index.
/// `test_id` names each button's `data-testid` from its label.
#[component]
pub fn Segmented(
    /// The labels, in order.
    labels: Vec<&'static str>,
    /// The index of the selected label.
    #[prop(into)]
    selected: Signal<usize>,
    /// Called with the index of a pressed label.
    on_select: Callback<usize>,
    /// What the group chooses, for assistive technology.
    label: &'static str,
    /// The buttons' test ids, from each choice's label.
    test_id: fn(&str) -> String,
) -> impl IntoView {
    view! {
        <div class="segmented" role="group" aria-label=label>
            {labels
                .into_iter()
                .enumerate()
                .map(|(index, text)| {
                    view! {
                        <button
                            type="button"
                            class="segmented__option"
                            aria-pressed=move || (selected.get() == index).to_string()
                            data-testid=test_id(text)
                            on:click=move |_| on_select.run(index)
                        >
                            {text}
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}

/// The signal and callback a [`Segmented`] needs to edit `value`, one of `choices`.
pub fn bind<T>(value: RwSignal<T>, choices: &'static [T]) -> (Signal<usize>, Callback<usize>)
where
    T: Copy + PartialEq + Send + Sync + 'static,
{
    let selected = Signal::derive(move || {
        let current = value.get();
        choices
            .iter()
            .position(|choice| *choice == current)
            .unwrap_or(usize::MAX)
    });
    let on_select = Callback::new(move |index: usize| {
        if let Some(choice) = choices.get(index) {
            value.set(*choice);
        }
    });
    (selected, on_select)
}
