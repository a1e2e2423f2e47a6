//! `examples/gan.rs`: a DCGAN trained by alternating steps with two optimizers, the generator's
//! step differentiated through the discriminator (`forward_train` / `backward_train` across two
//! models).

#[allow(dead_code)]
#[path = "../../examples/gan.rs"]
mod example;

#[test]
fn the_gan_makes_digits_a_classifier_recognises_and_neither_side_wins() {
    let (mut gan, logs) = example::train(1, 40, false).unwrap();
    // Neither side wins: over the last epochs the discriminator tells held-out real digits from
    // fakes better than chance and worse than perfectly, and no loss diverges.
    for (e, l) in logs.iter().enumerate().skip(30) {
        assert!((0.55..=0.95).contains(&l.d_accuracy), "epoch {}: discriminator accuracy {}", e + 1, l.d_accuracy);
        assert!(l.d_loss.is_finite() && l.g_loss.is_finite() && l.g_loss < 3.0, "epoch {}: {l:?}", e + 1);
    }
    // A classifier trained on real digits only is sure of the class of most generated ones.
    let (fake, real) = example::recognised(&mut gan, 256).unwrap();
    assert!(fake >= 0.5, "the classifier is sure (p >= 0.9) of {fake} of 256 generated digits ({real} of real ones)");
}
