// What a pipeline asks of where its models come from: a component's config file and its weights as a tensor source
// under diffusers' names. Two sources: a diffusers pipeline folder (ModelIndex), and a single-file CompVis checkpoint
// whose UNet, VAE and text encoder come from the file while every config (and the tokenizer, scheduler and any
// other component) comes from a folder of the same pipeline's configs (SingleFilePipeline).
using DiffuSharp.IO;

namespace DiffuSharp.Pipelines;

/// <summary>Configs and weights of a pipeline's components, by component name ("unet", "vae", "text_encoder", …).</summary>
public interface IPipelineSource
{
    /// <summary>The folder describing the pipeline: its model_index.json, configs, tokenizer and scheduler.</summary>
    ModelIndex Index { get; }

    /// <summary>The component's config file (config.json, scheduler_config.json, tokenizer_config.json).</summary>
    string ConfigPath(string component);

    /// <summary>The component's weights under diffusers' parameter names.</summary>
    ITensorSource Weights(string component);
}

/// <summary>A single-file checkpoint read through the configs of a pipeline folder (which needs no weights).</summary>
public sealed class SingleFilePipeline(SingleFileCheckpoint checkpoint, ModelIndex configs) : IPipelineSource
{
    /// <summary>The single-file checkpoint the UNet, VAE and text encoder weights come from.</summary>
    public SingleFileCheckpoint Checkpoint { get; } = checkpoint;
    /// <summary>The pipeline folder giving every config, the tokenizer, the scheduler and any component the checkpoint
    /// lacks.</summary>
    public ModelIndex Index { get; } = configs;

    /// <summary>Opens the checkpoint with the layout its configs describe (the UNet's, VAE's and text encoder's config.json).</summary>
    public static SingleFilePipeline Open(string checkpointPath, string configFolder)
    {
        var index = ModelIndex.Load(configFolder);
        var layout = SingleFileLayout.FromConfigs(index.Require("unet").ConfigPath, index.Require("vae").ConfigPath, index.Require("text_encoder").ConfigPath);
        return new SingleFilePipeline(SingleFileCheckpoint.Open(checkpointPath, layout), index);
    }

    /// <summary>The component's config file from the config folder; throws when the folder has no such
    /// component.</summary>
    public string ConfigPath(string component) => Index.Require(component).ConfigPath;

    /// <summary>The component's weights under diffusers' names: from the checkpoint for "unet", "vae" and
    /// "text_encoder", else from the config folder.</summary>
    public ITensorSource Weights(string component)
        => Checkpoint.Components.Contains(component) ? Checkpoint.Component(component) : Index.Weights(component);
}
