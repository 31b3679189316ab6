//! A segmented control: a row of buttons of which one is pressed.

use leptos::prelude::*;

/// One button per choice; pressing one selects it. `test_id` names each
/// button's `data-testid` from its label.
#[component]
pub fn Segmented<T>(
    /// The choices, in order, with their labels.
    choices: Vec<(T, &'static str)>,
    /// The selected choice.
    selected: RwSignal<T>,
    /// What the group chooses, for assistive technology.
    label: &'static str,
    /// The buttons' test ids, from each choice's label.
    test_id: fn(&str) -> String,
) -> impl IntoView
where
    T: Copy + PartialEq + Send + Sync + 'static,
{
    view! {
        <div class="segmented" role="group" aria-label=label>
            {choices
                .into_iter()
                .map(|(choice, text)| {
                    view! {
                        <button
                            type="button"
                            class="segmented__option"
                            aria-pressed=move || (selected.get() == choice).to_string()
                            data-testid=test_id(text)
                            on:click=move |_| selected.set(choice)
                        >
                            {text}
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}
