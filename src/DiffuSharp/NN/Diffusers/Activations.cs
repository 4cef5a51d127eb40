// diffusers' get_activation (models/activations.py): the act_fn names of its configs as tensor functions.
namespace DiffuSharp.NN.Diffusers;

internal static class Activations
{
    /// <summary>act(x) for a configured activation: SiLU, exact (erf) GELU or ReLU.</summary>
    public static Tensor Apply(this Activation act, Tensor x) => act switch
    {
        Activation.Silu => x.Silu(),
        Activation.Gelu => x.Gelu(),
        Activation.Relu => x.Clamp(0, double.PositiveInfinity),
        _ => throw new ArgumentOutOfRangeException(nameof(act), act, "unknown activation"),
    };
}
