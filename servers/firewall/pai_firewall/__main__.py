from pai_firewall.spec import main

main()
