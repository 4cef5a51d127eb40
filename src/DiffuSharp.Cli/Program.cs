namespace DiffuSharp.Cli; static class Program { static int Main(string[] a){ System.Console.WriteLine("hi"); return 0;} }
