from pai_gpu_jobs.spec import main

main()
